package modules

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/version"
	"io"
	"os/exec"
	"testing"
)

// nixpkgs builds the agent (nixos/pkgs/avalanche-agent.nix) with
// GOTOOLCHAIN=local, so go.mod's go line is the oldest Go that nixpkgs may
// ship and still build it. It must be exactly the newest go line among the
// dependencies: lower and `go mod tidy` raises it (and the build fails),
// higher and a nixpkgs Go that could build the agent is refused.
func TestGoLineIsTheDependenciesMinimum(t *testing.T) {
	// -mod=readonly: listing the whole graph with -mod=mod (CI's GOFLAGS)
	// would write go.sum entries for modules the build never loads.
	cmd := exec.Command("go", "list", "-mod=readonly", "-m", "-json", "all")
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	type module struct {
		Path, Version, GoVersion string
		Main                     bool
	}
	var main, newest module
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m module
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		switch {
		case m.Main:
			main = m
		case version.Compare("go"+m.GoVersion, "go"+newest.GoVersion) > 0:
			newest = m
		}
	}
	if main.GoVersion != newest.GoVersion {
		t.Errorf("go.mod says go %s; the dependencies need exactly go %s (%s %s asks for it)",
			main.GoVersion, newest.GoVersion, newest.Path, newest.Version)
	}
}
