package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// TestHostCommandsRunInDecryptHelper: `avalanche-agent remove-host` runs
// avalanche-decrypt (which links sops; the agent does not), passing its
// arguments, streams and exit status through. The commands themselves are
// tested in agent/internal/enrol on a scratch fleet with real sops files.
func TestHostCommandsRunInDecryptHelper(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatalf("nix-instantiate is needed (install nix-bin: .ci/install): %v", err)
	}
	helper, err := secretstest.BuildHelper(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	inventory := "{\n  keep = {\n    system = \"x86_64-linux\";\n    hardware = \"x86\";\n    roles = [ ];\n  };\n\n  old = {\n    system = \"x86_64-linux\";\n    hardware = \"x86\";\n    roles = [ ];\n  };\n}\n"
	for name, body := range map[string]string{"nixos/lib/inventory.nix": inventory, ".sops.yaml": "creation_rules: []\n",
		"nixos/hosts/old/default.nix": "{ }\n", "nixos/hosts/keep/default.nix": "{ }\n"} {
		os.MkdirAll(filepath.Join(repo, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(repo, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := func(k string) string {
		if k == "AVALANCHE_DECRYPT" {
			return helper
		}
		return os.Getenv(k)
	}
	hostCmd := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Args: args, Getenv: env}
		err := m.Execute(context.Background())
		return out.String(), errb.String(), err
	}

	out, stderr, err := hostCmd("remove-host", "old", "--repo", repo)
	if err != nil || !strings.Contains(out, "removed old from nixos/lib/inventory.nix") || !strings.Contains(out, "removed nixos/hosts/old/") {
		t.Fatalf("remove-host old = %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "nixos/lib/inventory.nix")); strings.Contains(string(b), "old") || !strings.Contains(string(b), "keep =") {
		t.Errorf("inventory after remove-host old:\n%s", b)
	}
	_, stderr, err = hostCmd("add-host", "new", "--repo", repo, "--system", "x86_64-linux", "--hardware", "x86", "--ssh-host-key", "-")
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != 1 || !strings.Contains(stderr, "avalanche-agent add-host: standard input holds no SSH public key") {
		t.Errorf("add-host with an empty key on stdin = %v, stderr %q; want exit 1 and the reason", err, stderr)
	}
	if _, _, err := hostCmd("rotate-host-key", "-h"); err != nil {
		t.Errorf("rotate-host-key -h = %v; want success", err)
	}

	// The just recipe in front: it builds both binaries from this checkout.
	just, err := exec.LookPath("just")
	if err != nil {
		t.Fatalf("just is needed for the operator recipes (npm install -g rust-just; .ci/install does): %v", err)
	}
	cmd := exec.Command(just, "--justfile", "../../../justfile", "remove-host", "keep", "--repo", repo)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "removed nixos/hosts/keep/") {
		t.Errorf("just remove-host keep = %v\n%s", err, out)
	}
}
