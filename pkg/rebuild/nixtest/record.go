package nixtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Recorder is a directory of wrappers around the Nix programs that log
// every invocation before running the real program: point rebuild.Nix's
// BinDir at Dir to learn exactly which nix commands a piece of code ran.
type Recorder struct {
	Dir string
	log string
}

// recorded are the programs wrapped; evaluating ones included, so a test
// can prove they never ran.
var recorded = []string{"nix", "nix-store", "nix-env", "nix-instantiate", "nix-build"}

// NewRecorder writes the wrappers into a temporary directory.
func NewRecorder(t testing.TB) *Recorder {
	t.Helper()
	r := &Recorder{Dir: t.TempDir()}
	r.log = filepath.Join(r.Dir, "calls.log")
	for _, prog := range recorded {
		real, err := exec.LookPath(prog)
		if err != nil {
			t.Fatalf("nixtest.NewRecorder: %v", err)
		}
		// One line per call: the program and its arguments, NUL-separated,
		// made in a file of its own and appended with one write, so that
		// calls running at once (a builder's hosts) never interleave.
		script := fmt.Sprintf("#!/bin/sh\nline=$(mktemp)\n{ printf '%%s' %s; for a in \"$@\"; do printf '\\0%%s' \"$a\"; done; echo; } > \"$line\"\n"+
			"cat \"$line\" >> %s\nrm -f \"$line\"\nexec %s \"$@\"\n",
			prog, shellQuote(r.log), shellQuote(real))
		if err := os.WriteFile(filepath.Join(r.Dir, prog), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// Calls returns every invocation so far: program name, then arguments.
func (r *Recorder) Calls(t testing.TB) [][]string {
	t.Helper()
	b, err := os.ReadFile(r.log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var calls [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line != "" {
			calls = append(calls, strings.Split(line, "\x00"))
		}
	}
	return calls
}

// Reset forgets the calls so far.
func (r *Recorder) Reset(t testing.TB) {
	t.Helper()
	if err := os.Remove(r.log); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// Evaluations returns the calls that evaluate Nix code or build
// derivations: nix eval/build/repl/flake/develop/shell/run,
// nix-instantiate, nix-build, nix-env (but not its profile operations
// --set, --switch-generation, --rollback, --list-generations and
// --delete-generations, which evaluate nothing), and nix-store --realise
// of a .drv.
func Evaluations(calls [][]string) [][]string {
	var out [][]string
	for _, c := range calls {
		if evaluates(c) {
			out = append(out, c)
		}
	}
	return out
}

func evaluates(c []string) bool {
	switch c[0] {
	case "nix-instantiate", "nix-build":
		return true
	case "nix-env":
		for _, a := range c[1:] {
			switch a {
			case "--set", "--switch-generation", "--rollback", "--list-generations", "--delete-generations":
				return false
			}
		}
		return true
	case "nix-store":
		for _, a := range c[1:] {
			if strings.HasSuffix(a, ".drv") {
				return true
			}
		}
		return false
	}
	for _, a := range c[1:] {
		switch a {
		case "eval", "build", "repl", "flake", "develop", "shell", "run", "derivation", "show-derivation", "search":
			return true
		}
	}
	return false
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
