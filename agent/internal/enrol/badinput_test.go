package enrol

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// TestBadInputChangesNothing: every refused command says why, in words a
// person can act on, and leaves every file of the repository as it was.
func TestBadInputChangesNothing(t *testing.T) {
	requireNix(t)
	f := newFleet(t)
	good := newSSHHost(t).pub
	dir := t.TempDir()
	rsaPub := filepath.Join(dir, "ssh_host_rsa_key.pub")
	writeFile(t, rsaPub, rsaKeyLine(t)+" root@host\n")
	garbled := filepath.Join(dir, "garbled.pub")
	writeFile(t, garbled, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI-not-base64 root@host\n")
	add := func(name string, extra ...string) []string {
		args := []string{"add-host", name, "--system", "aarch64-linux", "--hardware", "rpi4", "--roles", "k3s-agent", "--ssh-host-key", good}
		return append(args, extra...)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown hardware", add("raccoon06", "--hardware", "rpi5"),
			nil, `--hardware "rpi5": there is no nixos/profiles/hw-rpi5.nix (want one of hetzner-cloud, opi5plus, rog-strix, rpi4, x86)`},
		{"unknown role", add("raccoon06", "--roles", "k3s-agent,dns"), nil, `--roles "dns": there is no nixos/profiles/role-dns.nix`},
		{"bad system", add("raccoon06", "--system", "armv7l-linux"), nil, `--system "armv7l-linux": want one of aarch64-linux, x86_64-linux`},
		{"bad name", add("Raccoon_6"), nil, `host name "Raccoon_6": want lower-case letters, digits and '-' (a DNS label)`},
		{"duplicate host", add("eagle"), nil, "host eagle exists already: nixos/hosts/eagle is there (remove-host it first, or pick another name)"},
		{"duplicate in inventory", add("exit-node"), nil, "host exit-node exists already in nixos/lib/inventory.nix"},
		{"key of another host", add("raccoon06", "--ssh-host-key", f.hosts["eagle"].pub), nil, "is already &eagle's"},
		{"rsa key", add("raccoon06", "--ssh-host-key", rsaPub), nil,
			rsaPub + " holds no ssh-ed25519 key, only ssh-rsa: a host's age recipient comes from its ed25519 host key (ssh-keyscan -t ed25519 HOST)"},
		{"malformed key", add("raccoon06", "--ssh-host-key", garbled), nil, garbled + " line 1: not an SSH public key"},
		{"private key", add("raccoon06", "--ssh-host-key", f.hosts["eagle"].private), nil, "is a private key; give the public one"},
		{"no key", []string{"add-host", "raccoon06", "--system", "aarch64-linux", "--hardware", "rpi4"}, nil, "--ssh-host-key is required"},
		{"no admin key", []string{"remove-host", "eagle"}, map[string]string{"SOPS_AGE_KEY_FILE": filepath.Join(dir, "missing")},
			"secrets/shared/wifi.yaml: getting its data key with your admin key"},
		{"remove unknown", []string{"remove-host", "raccoon99"}, nil, "there is no host raccoon99"},
		{"rotate unknown", []string{"rotate-host-key", "raccoon99", "--ssh-host-key", good}, nil, ".sops.yaml has no key &raccoon99"},
		{"rotate to same key", []string{"rotate-host-key", "eagle", "--ssh-host-key", f.hosts["eagle"].pub}, nil, "is already &eagle's recipient: nothing to rotate"},
		{"not the repository", []string{"remove-host", "eagle", "--repo", dir}, nil, "is not the fleet repository (no nixos/lib/inventory.nix)"},
	}
	before := snapshot(t, f.root)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if !strings.Contains(strings.Join(args, " "), "--repo") {
				args = append(args, "--repo", f.root)
			}
			var out, errb bytes.Buffer
			err := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v = %v; want an error containing %q", tt.args, err, tt.want)
			}
			if diff := cmp.Diff(before, snapshot(t, f.root)); diff != "" {
				t.Errorf("%v changed the repository (-before +after):\n%s", tt.args, diff)
			}
		})
	}
}

func rsaKeyLine(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// TestPlaceholderRecipients: on the repository as committed (placeholder
// recipients), add-host says what to replace first and writes nothing.
func TestPlaceholderRecipients(t *testing.T) {
	requireNix(t)
	root := t.TempDir()
	for _, p := range []string{InventoryFile, SopsConfigFile, "nixos/profiles", "nixos/hosts", "secrets"} {
		copyTree(t, filepath.Join(repoRoot, p), filepath.Join(root, p))
	}
	if fi, err := os.Stat(filepath.Join(repoRoot, SopsConfigFile)); err != nil || fi.IsDir() {
		t.Fatalf("%s: %v", SopsConfigFile, err)
	}
	before := snapshot(t, root)
	_, err := (&Repo{Root: root}).AddHost(context.Background(), Host{Name: "raccoon06", System: "aarch64-linux",
		Hardware: "rpi4", Roles: []string{"k3s-agent"}, Key: mustKey(t, newSSHHost(t).pub)})
	if err == nil || !strings.Contains(err.Error(), `.sops.yaml: &admin is "age1…admin-placeholder", not an age recipient: replace the placeholders first`) {
		t.Errorf("AddHost with placeholder recipients = %v; want an error naming the placeholder", err)
	}
	if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
		t.Errorf("AddHost changed the repository (-before +after):\n%s", diff)
	}
}

func mustKey(t *testing.T, pubFile string) HostKey {
	t.Helper()
	b, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseHostKey(pubFile, b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
