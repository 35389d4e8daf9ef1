package enrol

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func addNewHost(t *testing.T, f *fleet, name string) sshHost {
	t.Helper()
	h := newSSHHost(t)
	var out, errb bytes.Buffer
	args := []string{"add-host", name, "--repo", f.root, "--system", "aarch64-linux", "--hardware", "rpi4",
		"--roles", "k3s-agent,server", "--ssh-host-key", h.pub}
	if err := Run(context.Background(), args, nil, &out, &errb); err != nil {
		t.Fatalf("add-host %s = %v\n%s%s", name, err, out.String(), errb.String())
	}
	return h
}

// TestAddHost enrols a host on a scratch fleet: after it, the new host's key
// decrypts its own new file and nothing else, the admin still decrypts
// everything, and the inventory evaluates with the new entry.
func TestAddHost(t *testing.T) {
	requireNix(t)
	f := newFleet(t)
	oldSops, _ := os.ReadFile(filepath.Join(f.root, SopsConfigFile))
	h := addNewHost(t, f, "raccoon06")

	own := "secrets/nixos/raccoon06/secrets.yaml"
	all := append(slices.Clone(f.files), own)
	if got := f.readable(t, h.private, all); !cmp.Equal(got, []string{own}) {
		t.Errorf("the new host decrypts %v; want only %s", got, own)
	}
	if got := f.adminReadable(t, all); !cmp.Equal(got, all) {
		t.Errorf("the admin decrypts %v; want every file %v", got, all)
	}
	if got := f.readable(t, f.hosts["eagle"].private, all); !cmp.Equal(got, []string{"secrets/nixos/eagle/secrets.yaml", "secrets/shared/wifi.yaml"}) {
		t.Errorf("eagle decrypts %v after add-host; want its own and the shared file", got)
	}
	inv, err := evalInventory(context.Background(), f.root, readString(t, f.root, InventoryFile))
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{System: "aarch64-linux", Hardware: "rpi4", Roles: []string{"k3s-agent", "server"}}
	if diff := cmp.Diff(want, entryOf(inv["raccoon06"])); diff != "" {
		t.Errorf("inventory raccoon06 mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(readString(t, f.root, "nixos/hosts/raccoon06/default.nix"), `system.stateVersion = "25.05";`) {
		t.Errorf("nixos/hosts/raccoon06/default.nix lacks the stateVersion of the other hosts")
	}
	// .sops.yaml keeps every line it had, in order, and gains four.
	newSops := readString(t, f.root, SopsConfigFile)
	if kept := subsequence(strings.SplitAfter(string(oldSops), "\n"), strings.SplitAfter(newSops, "\n")); !kept {
		t.Errorf(".sops.yaml lost or reordered lines:\n%s", newSops)
	}
	for _, line := range []string{"  - &raccoon06 " + h.age + "\n", "  - path_regex: (^|/)secrets/nixos/raccoon06/.+$\n", "      - age: [*raccoon06, *admin]\n"} {
		if !strings.Contains(newSops, line) {
			t.Errorf(".sops.yaml lacks %q", line)
		}
	}
}

// subsequence reports whether every line of old appears in new, in order.
func subsequence(old, new []string) bool {
	i := 0
	for _, l := range new {
		if i < len(old) && l == old[i] {
			i++
		}
	}
	return i == len(old)
}

func readString(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRemoveHost removes eagle: its recipient leaves every file (the shared
// one is re-wrapped for possum and the admin), its folders and entry go.
func TestRemoveHost(t *testing.T) {
	requireNix(t)
	f := newFleet(t)
	if _, err := f.repo().RemoveHost(context.Background(), "eagle"); err != nil {
		t.Fatalf("RemoveHost(eagle) = %v", err)
	}
	rest := slices.DeleteFunc(slices.Clone(f.files), func(s string) bool { return strings.HasPrefix(s, "secrets/nixos/eagle/") })
	if got := f.readable(t, f.hosts["eagle"].private, rest); len(got) != 0 {
		t.Errorf("eagle's key still decrypts %v after remove-host", got)
	}
	if got := f.readable(t, f.hosts["possum"].private, rest); !slices.Contains(got, "secrets/shared/wifi.yaml") {
		t.Errorf("possum decrypts %v; want the shared file too", got)
	}
	if got := f.adminReadable(t, rest); !cmp.Equal(got, rest) {
		t.Errorf("the admin decrypts %v; want %v", got, rest)
	}
	conf := readString(t, f.root, SopsConfigFile)
	if strings.Contains(conf, "eagle") || strings.Contains(conf, f.hosts["eagle"].age) {
		t.Errorf(".sops.yaml still names eagle:\n%s", conf)
	}
	for _, dir := range []string{"nixos/hosts/eagle", "secrets/nixos/eagle"} {
		if _, err := os.Stat(filepath.Join(f.root, dir)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", dir, err)
		}
	}
	inv, err := evalInventory(context.Background(), f.root, readString(t, f.root, InventoryFile))
	if _, ok := inv["eagle"]; err != nil || ok || len(inv) != 16 {
		t.Errorf("inventory after remove-host: %d hosts, eagle there: %v, %v; want 16 without eagle", len(inv), ok, err)
	}
}

// TestRotateHostKey gives possum a new key: the old one no longer opens
// possum's files, the new one does, and the values' ciphertexts stay.
func TestRotateHostKey(t *testing.T) {
	f := newFleet(t)
	old := f.hosts["possum"]
	before := readString(t, f.root, "secrets/nixos/possum/secrets.yaml")
	fresh := newSSHHost(t)
	key, err := ParseHostKey("test", []byte(readString(t, "/", fresh.pub)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo().RotateHostKey(context.Background(), "possum", key); err != nil {
		t.Fatalf("RotateHostKey = %v", err)
	}
	mine := []string{"secrets/nixos/possum/backup.env", "secrets/nixos/possum/secrets.yaml", "secrets/shared/wifi.yaml"}
	if got := f.readable(t, old.private, f.files); len(got) != 0 {
		t.Errorf("the old key still decrypts %v", got)
	}
	if got := f.readable(t, fresh.private, f.files); !cmp.Equal(sorted(got), mine) {
		t.Errorf("the new key decrypts %v; want %v", got, mine)
	}
	if got := f.adminReadable(t, f.files); !cmp.Equal(got, f.files) {
		t.Errorf("the admin decrypts %v; want every file", got)
	}
	after := readString(t, f.root, "secrets/nixos/possum/secrets.yaml")
	if value := "    env: ENC["; !strings.Contains(before, value) || lineWith(before, value) != lineWith(after, value) {
		t.Errorf("the encrypted value changed; updatekeys must only re-wrap the data key:\nbefore %s\nafter  %s", lineWith(before, value), lineWith(after, value))
	}
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
