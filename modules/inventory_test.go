package modules

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type host struct {
	System   string   `json:"system"`
	Hardware string   `json:"hardware"`
	Roles    []string `json:"roles"`
	Dir      string   `json:"dir"`
}

// The inventory is pure data (evaluable without nixpkgs) and names exactly
// the hosts that have a directory; every hardware and role it names has a
// profile that mkNixosConfig can import.
func TestInventoryMatchesHostDirectories(t *testing.T) {
	out := nixEval(t, "import "+filepath.Join(repoRoot, "nixos", "lib", "inventory.nix"))
	var inv map[string]host
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&inv); err != nil {
		t.Fatalf("decoding inventory: %v\n%s", err, out)
	}

	var dirs []string
	entries, err := os.ReadDir(filepath.Join(repoRoot, "nixos", "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, "nixos/hosts/"+e.Name())
		}
	}
	dirs = append(dirs, "cloud/nixos")
	var fromInventory []string
	for name, h := range inv {
		dir := h.Dir
		if dir == "" {
			dir = "nixos/hosts/" + name
		}
		fromInventory = append(fromInventory, dir)
	}
	sort.Strings(dirs)
	sort.Strings(fromInventory)
	if diff := cmp.Diff(dirs, fromInventory); diff != "" {
		t.Errorf("host directories vs inventory (-dirs +inventory):\n%s", diff)
	}

	for name, h := range inv {
		if h.System != "aarch64-linux" && h.System != "x86_64-linux" {
			t.Errorf("inventory %s: system = %q; want aarch64-linux or x86_64-linux", name, h.System)
		}
		mustExist(t, name, filepath.Join("nixos", "profiles", "hw-"+h.Hardware+".nix"))
		for _, r := range h.Roles {
			mustExist(t, name, filepath.Join("nixos", "profiles", "role-"+r+".nix"))
		}
		dir := h.Dir
		if dir == "" {
			dir = filepath.Join("nixos", "hosts", name)
		}
		mustExist(t, name, filepath.Join(dir, "default.nix"))
	}
}

func mustExist(t *testing.T, host, rel string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(repoRoot, rel)); err != nil {
		t.Errorf("inventory %s needs %s: %v", host, rel, err)
	}
}

// checks.nix turns impossible option combinations into NixOS assertions; the
// test reads the messages a person would see from `nixos-rebuild`.
func TestChecks(t *testing.T) {
	tests := []struct {
		name    string
		options string
		want    []string // substrings, one per failing assertion, in order
	}{
		{
			name:    "https with token is fine",
			options: `{ hostname = "eagle"; repository.url = "https://git.internal/x.git"; repository.tokenFile = "/t"; }`,
		},
		{
			name:    "scp-like without user is ssh too",
			options: `{ hostname = "eagle"; repository.url = "eagle.internal:fleet/x.git"; repository.sshKeyFile = "/k"; }`,
			want:    []string{"set services.avalanche-agent.repository.knownHostsFile"},
		},
		{
			name:    "ssh url without known hosts or key",
			options: `{ hostname = "eagle"; repository.url = "ssh://forgejo@eagle.internal/fleet/x.git"; }`,
			want:    []string{"repository.knownHostsFile", "repository.sshKeyFile (a deploy key)"},
		},
		{
			name:    "token with ssh url",
			options: `{ hostname = "eagle"; repository = { url = "git@eagle:x.git"; sshKeyFile = "/k"; knownHostsFile = "/h"; tokenFile = "/t"; }; }`,
			want:    []string{"tokenFile only works with an http(s) URL"},
		},
		{
			name:    "ssh key with https url",
			options: `{ hostname = "eagle"; repository = { url = "https://git.internal/x.git"; sshKeyFile = "/k"; }; }`,
			want:    []string{"only work with an SSH URL"},
		},
		{
			name:    "exit node and home ip without tokens, on one host",
			options: `{ hostname = "x"; repository.url = "/srv/x.git"; exitNode.enable = true; homeIP.enable = true; }`,
			want:    []string{"exitNode.authKeyFile", "homeIP.tokenFile", "cannot both be enabled"},
		},
		{
			name:    "reboot with test action",
			options: `{ hostname = "x"; repository.url = "/srv/x.git"; deploy = { action = "test"; reboot.enable = true; }; }`,
			want:    []string{"reboot.enable makes no sense"},
		},
		{
			name:    "drain without avalanche-drain",
			options: `{ hostname = "x"; repository.url = "/srv/x.git"; deploy.drain.enable = true; }`,
			want:    []string{"deploy.drain.enable needs services.avalanche-agent.deploy.drain.package"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := nixEval(t, `map (a: a.message) (builtins.filter (a: !a.assertion) (import `+agentDir+`/checks.nix `+tt.options+`))`)
			var got []string
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("decoding %s: %v", out, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("checks(%s) = %q; want %d failures matching %q", tt.options, got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("checks(%s)[%d] = %q; want it to mention %q", tt.options, i, got[i], tt.want[i])
				}
			}
		})
	}
}
