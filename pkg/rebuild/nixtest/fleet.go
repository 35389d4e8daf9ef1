package nixtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// WriteFleet writes a flake.nix with one nixosConfigurations entry per
// host into dir, plus every host's Files: a fleet for a builder to build.
func WriteFleet(dir string, hosts []FlakeOptions) error {
	for _, h := range hosts {
		if err := writeFiles(dir, h.Files); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(fleetNix(hosts)), 0o644)
}

// WriteFleet writes a fleet flake into the work tree and commits it.
func (r *Repo) WriteFleet(t testing.TB, hosts []FlakeOptions, message string) string {
	t.Helper()
	if err := WriteFleet(r.Work, hosts); err != nil {
		t.Fatalf("WriteFleet: %v", err)
	}
	return r.Commit(t, message)
}

// evalWork is a Nix expression that builds an attribute set of n entries,
// keeps all of it alive until it is summed up, and evaluates to a string.
func evalWork(n int) string {
	return fmt.Sprintf(`let
        set = builtins.listToAttrs (builtins.genList (i: { name = "k${toString i}"; value = { inherit i; s = "value-${toString i}"; }; }) %d);
        names = builtins.attrNames set;
      in toString (builtins.foldl' (acc: k: acc + set.${k}.i) 0 names)`, n)
}

// deps is a Nix list of n derivations, each writing 64 KiB of hex text
// unique to marker: paths a builder builds and hosts substitute.
func deps(n int, marker, system string) string {
	return fmt.Sprintf(`builtins.genList (j: derivation {
        name = "dep-${toString j}"; system = %s; builder = "/bin/sh";
        args = [ "-c" "printf %%s \"$content\" > $out" ];
        content = builtins.concatStringsSep ""
          (builtins.genList (k: builtins.hashString "sha256" (%s + "-${toString j}-${toString k}")) 1024);
      }) %d`, nixString(system), nixString(marker), n)
}
