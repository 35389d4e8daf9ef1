// Package nixtest helps tests run real Nix: it checks that Nix can run here,
// writes tiny input-less flakes whose nixosConfigurations.<name> is a fake
// NixOS system built with /bin/sh, keeps them in a bare git repository the
// way the agent does, and fakes systemd-run.
package nixtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Require skips the test when Nix cannot run here (not root, or nix,
// nix-store, nix-env or git missing), and fails it instead when CI=true.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, prog := range []string{"nix", "nix-store", "nix-env", "git"} {
		if _, err := exec.LookPath(prog); err != nil {
			missing = append(missing, prog)
		}
	}
	if len(missing) == 0 {
		return
	}
	t.Fatalf("nix tests need %s: run them as root after .ci/install (apt-get install nix-bin git)", strings.Join(missing, ", "))
}

// Args returns the extra arguments tests give every nix command: no
// substituters (nothing is fetched from the network).
func Args() []string {
	return []string{"--option", "substituters", ""}
}

// Env returns extra environment for nix commands in t: a private cache
// directory, so that Nix's git cache of throw-away repositories stays in
// t's temporary directory.
func Env(t testing.TB) []string {
	t.Helper()
	return []string{"XDG_CACHE_HOME=" + t.TempDir()}
}
