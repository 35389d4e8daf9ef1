package modules

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
	"github.com/google/go-cmp/cmp"
)

// report is what nixos/tests/eval says about one host.
type report struct {
	Toplevel    string          `json:"toplevel"`
	Warnings    []string        `json:"warnings"`
	AgentConfig json.RawMessage `json:"agentConfig"`
	Manifest    json.RawMessage `json:"manifest"`
	AgentUnit   struct {
		RestartIfChanged bool   `json:"restartIfChanged"`
		Type             string `json:"Type"`
		ExecStart        string `json:"ExecStart"`
		WatchdogSec      string `json:"WatchdogSec"`
	} `json:"agentUnit"`
	Etc           []string `json:"etc"`
	AfterAgent    []string `json:"afterAgent"`
	PostBuildHook *string  `json:"postBuildHook"`
	SSHServeKeys  []string `json:"sshServeKeys"`
	AllowUnfree   bool     `json:"allowUnfree"`
}

// Every host of the inventory evaluates, through flake.nix, mkNixosConfig,
// the profiles and its own directory, with the real module system: no
// failing assertion (ours, NixOS's that nixos/tests/eval/rules.nix mirrors,
// the removed options of upstream.nix), no warning (renamed options), every
// file it names present. Its rendered agent config passes the agent's own
// check, and every secret it declares decrypts, with the real helper, from
// the SOPS files generated for it.
func TestHostsEvaluate(t *testing.T) {
	f := newFleet(t)
	inv := inventoryHosts(t)
	var hosts []string
	f.mustEval(t, "hosts", &hosts)
	if diff := cmp.Diff(sortedKeys(inv), hosts); diff != "" {
		t.Fatalf("nixosConfigurations vs inventory (-inventory +flake):\n%s", diff)
	}
	if len(hosts) != 17 {
		t.Errorf("the fleet has %d hosts; want the 17 of the inventory", len(hosts))
	}
	keyFile, plans := f.writeSecrets(t, hosts)
	ids, err := secrets.LoadIdentities([]string{keyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dec := &secrets.Decrypter{Helper: secretstest.Helper(t)}

	reports := map[string]*report{}
	for _, h := range hosts {
		r := &report{}
		reports[h] = r
		t.Run(h, func(t *testing.T) {
			if err := f.eval(fmt.Sprintf("report %q", h), r); err != nil {
				t.Fatalf("evaluating %s: %v", h, err)
			}
			if len(r.Warnings) > 0 {
				t.Errorf("%s evaluates with warnings:\n%s", h, strings.Join(r.Warnings, "\n"))
			}
			if err := checkConfig(t, r.AgentConfig); err != nil {
				t.Errorf("%s: the rendered agent config fails check-config: %v", h, err)
			}
			checkSecrets(t, h, r.Manifest, plans[h], dec, ids)
		})
	}
	t.Run("builders can upload to possum", func(t *testing.T) { checkUploads(t, inv, reports) })
	t.Run("services that read secrets start after the agent", func(t *testing.T) {
		for h, want := range map[string][]string{
			"beacon":    {"grafana"},
			"mysecrets": {"kanidm", "step-ca", "vaultwarden"},
			"possum":    {"garage", "harmonia"},
			"raccoon00": {"k3s"},
			"eagle":     {},
		} {
			if diff := cmp.Diff(want, reports[h].AfterAgent); diff != "" {
				t.Errorf("%s: services ordered after avalanche-agent (-want +got):\n%s", h, diff)
			}
		}
	})
}

// services.avalanche-agent on its own, configured like the VM test: the unit
// the agent needs (notify, watchdog, never restarted by a switch), the two
// files it reads from the built system, and a config its parser accepts.
func TestAgentModuleAlone(t *testing.T) {
	f := newFleet(t)
	var r report
	f.mustEval(t, "moduleOnly", &r)
	if len(r.Warnings) > 0 {
		t.Errorf("warnings: %q", r.Warnings)
	}
	if err := checkConfig(t, r.AgentConfig); err != nil {
		t.Errorf("the rendered agent config fails check-config: %v", err)
	}
	u := r.AgentUnit
	if u.Type != "notify" || u.WatchdogSec == "" || u.RestartIfChanged ||
		!strings.HasSuffix(u.ExecStart, "-avalanche-agent/bin/avalanche-agent run --config /etc/avalanche-agent/config.json") {
		t.Errorf("avalanche-agent.service = %+v; want Type=notify, a watchdog, restartIfChanged = false, ExecStart running the flake's package on /etc/avalanche-agent/config.json", u)
	}
	if diff := cmp.Diff([]string{"avalanche-agent/config.json", "avalanche-agent/secrets.json"}, r.Etc); diff != "" {
		t.Errorf("environment.etc (-want +got):\n%s", diff)
	}
}

// checkSecrets parses the host's manifest as the agent does and decrypts
// each entry from the generated file it was rendered from.
func checkSecrets(t *testing.T, h string, raw []byte, plan []planned, dec *secrets.Decrypter, ids *secrets.Identities) {
	t.Helper()
	m, err := secrets.ParseManifest(raw)
	if err != nil {
		t.Fatalf("%s: secrets.ParseManifest = %v\n%s", h, err, raw)
	}
	files := map[string]string{}
	for _, p := range plan {
		files[p.Name] = p.File
	}
	if len(m.Secrets) != len(plan) {
		t.Fatalf("%s: manifest has %d secrets; the module declares %d", h, len(m.Secrets), len(plan))
	}
	want := map[string][]byte{}
	for i, s := range m.Secrets {
		if !strings.HasPrefix(s.SopsFile, "/nix/store/") || filepath.Base(files[s.Name]) != strings.SplitN(filepath.Base(s.SopsFile), "-", 2)[1] {
			t.Errorf("%s: secret %s: sopsFile = %q; want the store copy of %s", h, s.Name, s.SopsFile, files[s.Name])
		}
		// Not copied to the store (read-only evaluation): read the source.
		m.Secrets[i].SopsFile = files[s.Name]
		want[s.Name] = []byte(testValue(files[s.Name], s.Key))
	}
	got, err := dec.Decrypt(context.Background(), ids, m.Secrets)
	if err != nil {
		t.Fatalf("%s: decrypting its secrets: %v", h, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: decrypted secrets (-want +got):\n%s", h, diff)
	}
}

// Root on every builder pushes to possum's nix-ssh with its SSH host key
// (role-builder.nix), so possum must list each builder's host key.
func checkUploads(t *testing.T, inv map[string]host, reports map[string]*report) {
	possum := reports["possum"]
	if possum == nil || possum.Toplevel == "" {
		t.Fatal("possum did not evaluate")
	}
	keys := hostKeys(t)
	for _, name := range sortedKeys(inv) {
		if !slices.Contains(inv[name].Roles, "builder") {
			continue
		}
		if !slices.Contains(possum.SSHServeKeys, keys[name]) {
			t.Errorf("possum's nix.sshServe.keys lack builder %s's host key %q", name, keys[name])
		}
		r := reports[name]
		if r == nil || r.PostBuildHook == nil {
			t.Errorf("builder %s has no post-build hook", name)
			continue
		}
		for _, want := range []string{"ssh-ng://nix-ssh@possum.internal?ssh-key=/etc/ssh/ssh_host_ed25519_key"} {
			if !strings.Contains(*r.PostBuildHook, want) {
				t.Errorf("builder %s's post-build hook does not use %q:\n%s", name, want, *r.PostBuildHook)
			}
		}
	}
}

func hostKeys(t *testing.T) map[string]string {
	t.Helper()
	var keys map[string]string
	out := nixEval(t, "(import "+filepath.Join(repoRoot, "nixos", "lib", "keys.nix")+").hostKeys")
	if err := json.Unmarshal(out, &keys); err != nil {
		t.Fatal(err)
	}
	return keys
}

// Unfree packages are allowed one by one, on the host that needs them:
// calypso gets Steam and the NVIDIA driver, nothing else, and no host
// allows every unfree package.
func TestUnfreeIsAllowedOnlyWherePicked(t *testing.T) {
	f := newFleet(t)
	f.writeSecrets(t, []string{"calypso", "eagle"})
	tests := []struct {
		host, pname string
		want        bool
	}{
		{"calypso", "steam", true},
		{"calypso", "steam-unwrapped", true},
		{"calypso", "nvidia-x11", true},
		{"calypso", "nvidia-settings", true},
		{"calypso", "vscode", false},
		{"calypso", "discord", false},
		{"eagle", "steam", false},
	}
	for _, tt := range tests {
		var got bool
		f.mustEval(t, fmt.Sprintf("unfreeAllowed %q %q", tt.host, tt.pname), &got)
		if got != tt.want {
			t.Errorf("%s allows unfree %s = %v; want %v", tt.host, tt.pname, got, tt.want)
		}
	}
	for _, h := range []string{"calypso", "eagle"} {
		var r report
		f.mustEval(t, fmt.Sprintf("report %q", h), &r)
		if r.AllowUnfree {
			t.Errorf("%s sets nixpkgs.config.allowUnfree; allow the packages it needs by name", h)
		}
	}
}

// flake.nix's other outputs evaluate with today's package names: the dev
// shell and the formatter use nixfmt (not nixfmt-rfc-style) and the current
// nixos-rebuild, and the agent package builds its three commands.
func TestFlakeOutputs(t *testing.T) {
	f := newFleet(t)
	var inputs []string
	f.mustEval(t, "inputs", &inputs)
	if diff := cmp.Diff([]string{"nixos-hardware", "nixpkgs"}, inputs); diff != "" {
		t.Errorf("flake inputs (-stubbed in nixos/tests/eval +flake.nix):\n%s", diff)
	}
	var outs map[string]struct {
		DevShell  []string `json:"devShell"`
		Formatter string   `json:"formatter"`
		Agent     struct {
			Name        string   `json:"name"`
			SubPackages []string `json:"subPackages"`
		} `json:"agent"`
	}
	f.mustEval(t, "flakeOutputs", &outs)
	for _, system := range []string{"aarch64-linux", "x86_64-linux"} {
		o := outs[system]
		if o.Formatter != "nixfmt" || !slices.Contains(o.DevShell, "nixfmt") || !slices.Contains(o.DevShell, "nixos-rebuild-ng") {
			t.Errorf("%s: formatter %q, dev shell %q; want nixfmt and nixos-rebuild-ng", system, o.Formatter, o.DevShell)
		}
		want := []string{"agent/cmd/avalanche-agent", "agent/cmd/avalanche-decrypt", "agent/cmd/avalanche-cloud",
			"agent/cmd/avalanche-s3"}
		if diff := cmp.Diff(want, o.Agent.SubPackages); diff != "" {
			t.Errorf("%s: agent package subPackages (-want +got):\n%s", system, diff)
		}
	}
}
