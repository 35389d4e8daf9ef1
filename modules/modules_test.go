// Package modules holds the tests of the NixOS side that run without full
// nixpkgs: every .nix file parses, the pure renderers of modules/avalanche-agent
// produce what the agent's strict parsers accept, the host inventory matches
// the host directories, and every host of the fleet evaluates with nixpkgs'
// real module system (lib.evalModules) over stubs of NixOS and pkgs
// (nixos/tests/eval). Building the systems needs all of nixpkgs and runs
// elsewhere (`nix flake check`, the VM test in nixos/tests).
package modules

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// repoRoot is the repository, one level above this package.
var repoRoot = func() string {
	abs, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	return abs
}()

// agentBin is the avalanche-agent binary built once by TestMain; agentErr
// says why there is none.
var (
	agentBin string
	agentErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "modules-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin, agentErr = buildAgent(dir)
	code := m.Run()
	secretstest.RemoveHelper()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAgent builds ./agent/cmd/avalanche-agent into dir, for check-config.
func buildAgent(dir string) (string, error) {
	bin := filepath.Join(dir, "avalanche-agent")
	cmd := exec.Command("go", "build", "-o", bin, "./agent/cmd/avalanche-agent")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./agent/cmd/avalanche-agent: %w\n%s", err, out)
	}
	return bin, nil
}

// requireTool fails the test when name is not installed, saying how to
// install it.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	t.Fatalf("%s is needed for the Nix tests (apt-get install nix-bin git; .ci/install does): %v", name, err)
	return ""
}

// nixEval evaluates expr strictly and returns its JSON. Read-only mode: path
// literals get their store path computed, nothing is written to the store.
func nixEval(t *testing.T, expr string) []byte {
	t.Helper()
	bin := requireTool(t, "nix-instantiate")
	argv := []string{bin, "--eval", "--strict", "--json", "--readonly-mode", "-E", expr}
	out, err := run(argv)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// run executes argv; its error carries the argv and the tail of stderr.
func run(argv []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.Bytes(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// agentDir is the agent's module directory, as a Nix path literal.
var agentDir = filepath.Join(repoRoot, "modules", "avalanche-agent")

func renderExpr(options string) string {
	return fmt.Sprintf("import %s/render.nix (%s)", agentDir, options)
}

func TestNixFilesParse(t *testing.T) {
	bin := requireTool(t, "nix-instantiate")
	var files []string
	err := filepath.WalkDir(repoRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".nix") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", repoRoot, err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d .nix files under %s; want the fleet's (at least 20)", len(files), repoRoot)
	}
	for _, f := range files {
		if _, err := run([]string{bin, "--parse", f}); err != nil {
			t.Errorf("parsing %s: %v", f, err)
		}
	}
}
