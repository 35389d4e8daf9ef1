package modules

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goPackage is a Nix package built with buildGoModule whose vendorHash the
// test keeps current: its file, the paths of its src (flake.nix's fileset)
// and the directory of its go.mod inside src (modRoot).
type goPackage struct {
	file    string
	src     []string
	modRoot string
}

var goPackages = []goPackage{
	// agent/drain is a module of its own: go mod vendor of the root module
	// skips it, and flake.nix leaves it out of agentSrc.
	{file: "nixos/pkgs/avalanche-agent.nix", src: []string{"go.mod", "go.sum", "agent", "pkg"}, modRoot: "."},
	{file: "nixos/pkgs/avalanche-drain.nix", modRoot: "agent/drain",
		src: []string{"agent/drain", "kubernetes/check/go.mod", "kubernetes/check/go.sum", "kubernetes/check/kubetest"}},
}

var vendorHashRE = regexp.MustCompile(`(?m)^(\s*vendorHash\s*=\s*)"(sha256-[A-Za-z0-9+/]{43}=)";`)

// TestVendorHash recomputes what buildGoModule's goModules derivation puts
// in $out for each package's go.mod and go.sum, and compares its NAR hash
// with the vendorHash in its nixos/pkgs file. nixpkgs' module.nix (with
// proxyVendor = false) runs, in a copy of the package's src, in modRoot:
//
//	GO111MODULE=on GOTOOLCHAIN=local go mod vendor   (GOFLAGS unset)
//	cp -r vendor $out
//
// with outputHashMode = "recursive": the hash is sha256 of the NAR of that
// directory, which is what nix-hash --type sha256 prints. The test does the
// same with the Go here; the go directive of go.mod pins the toolchain line
// (GOTOOLCHAIN=local), and modules.txt records each dependency's own go
// version, not the toolchain's, so the same go.mod gives the same vendor/.
func TestVendorHash(t *testing.T) {
	nixHash := requireTool(t, "nix-hash")
	for _, p := range goPackages {
		t.Run(filepath.Base(p.file), func(t *testing.T) {
			want := vendorHashIn(t, filepath.Join(repoRoot, p.file))
			src := filepath.Join(copySrc(t, p.src), p.modRoot)
			cmd := exec.Command("go", "mod", "vendor")
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "GOFLAGS=", "GO111MODULE=on", "GOTOOLCHAIN=local", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go mod vendor in a copy of %s's source: %v\n%s", p.file, err, out)
			}
			out, err := run([]string{nixHash, "--type", "sha256", filepath.Join(src, "vendor")})
			if err != nil {
				t.Fatal(err)
			}
			got, err := sriFromHex(strings.TrimSpace(string(out)))
			if err != nil {
				t.Fatalf("nix-hash printed %q: %v", out, err)
			}
			if got != want {
				t.Fatalf("go.mod/go.sum changed the vendored dependencies: the vendorHash in %s is stale.\n"+
					"In %s replace\n    vendorHash = %q;\nwith\n    vendorHash = %q;\n"+
					"(computed as buildGoModule does: go mod vendor in %s of a copy of %s, NAR sha256)",
					p.file, p.file, want, got, p.modRoot, strings.Join(p.src, ", "))
			}
		})
	}
}

// vendorHashIn reads the vendorHash = "sha256-…"; line of a package file.
func vendorHashIn(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := vendorHashRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no line like `vendorHash = \"sha256-…\";`; run this test once and paste the value it prints", file)
	}
	return string(m[2])
}

// copySrc copies what a flake.nix fileset of paths holds (as a flake input
// only files git knows, and new ones not yet added, so a new import shows
// before it is committed) into a temporary directory. Which packages exist
// decides which dependencies go mod vendor copies. The agent's src holds
// agent/ without agent/drain, a module of its own that go mod vendor skips
// anyway.
func copySrc(t *testing.T, paths []string) string {
	t.Helper()
	git := requireTool(t, "git")
	out, err := run(append([]string{git, "-C", repoRoot, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--"}, paths...))
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree, gone from the flake's source too
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// sriFromHex turns nix-hash's base16 sha256 into the SRI form Nix prints.
func sriFromHex(h string) (string, error) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("not a base16 sha256: %v", err)
	}
	return "sha256-" + base64.StdEncoding.EncodeToString(b), nil
}

// TestSRIFromHexMatchesNix checks the conversion against Nix's own SRI
// output (nix hash to-sri, the experimental command in Nix 2.8).
func TestSRIFromHexMatchesNix(t *testing.T) {
	nix := requireTool(t, "nix")
	const hexHash = "878832cd22b5e038e117b701378558f8a9b6cad7381a0e6d57a9e865d34f85a6"
	got, err := sriFromHex(hexHash)
	if err != nil {
		t.Fatal(err)
	}
	out, err := run([]string{nix, "--extra-experimental-features", "nix-command", "hash", "to-sri", "--type", "sha256", hexHash})
	if err != nil {
		t.Fatal(err)
	}
	if want := string(bytes.TrimSpace(out)); got != want {
		t.Errorf("sriFromHex(%s) = %s; nix hash to-sri says %s", hexHash, got, want)
	}
}
