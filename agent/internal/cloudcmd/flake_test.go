package cloudcmd

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// flakeRepo is a checkout holding one commit signed by an allowed signer,
// one signed by a stranger and one unsigned, and the allowed_signers file.
type flakeRepo struct {
	dir, signers               string
	signed, stranger, unsigned string
}

func newFlakeRepo(t *testing.T) flakeRepo {
	t.Helper()
	gittest.Require(t, "ssh-keygen")
	keys := t.TempDir()
	operator, operatorPub := gittest.NewSSHKey(t, keys, "operator")
	stranger, _ := gittest.NewSSHKey(t, keys, "stranger")
	r := flakeRepo{dir: t.TempDir(), signers: filepath.Join(keys, "allowed_signers")}
	if err := os.WriteFile(r.signers, []byte(gittest.AllowedSigner("operator@avalanche", operatorPub)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", r.dir, "-c", "user.name=op", "-c", "user.email=op@x", "-c", "gpg.format=ssh"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %q: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "--quiet")
	commit := func(key, msg string) string {
		args := []string{"commit", "--quiet", "--allow-empty", "-m", msg}
		if key != "" {
			args = append([]string{"-c", "user.signingkey=" + key}, append(args, "-S")...)
		}
		git(args...)
		return git("rev-parse", "HEAD")
	}
	r.signed = commit(operator, "signed by the operator")
	r.stranger = commit(stranger, "signed by a stranger")
	r.unsigned = commit("", "unsigned")
	return r
}

func flakeAt(rev string) string { return "git+https://git.example/fleet/avalanche?rev=" + rev + "#vps" }

// Item 8 of issue 25: the bootstrap switches to --flake as root before any
// agent verifies anything, so provisioning refuses a flake that does not
// pin a commit signed by an allowed signer, before any API call.
func TestProvisionVerifiesTheFlakeCommit(t *testing.T) {
	r := newFlakeRepo(t)
	e := newEnv(t)
	base := []string{"provision-exit-node", "--ssh-key-file", e.keyFile, "--home-ip", "203.0.113.7"}
	tests := []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"branch tip", []string{"--flake", "git+https://git.example/fleet/avalanche#vps", "--allowed-signers", r.signers, "--repo", r.dir},
			"does not pin a commit", true},
		{"no allowed signers", []string{"--flake", flakeAt(r.signed), "--repo", r.dir}, "--flake needs --allowed-signers", true},
		{"unsigned", []string{"--flake", flakeAt(r.unsigned), "--allowed-signers", r.signers, "--repo", r.dir}, "not signed", false},
		{"stranger", []string{"--flake", flakeAt(r.stranger), "--allowed-signers", r.signers, "--repo", r.dir}, "bad signature", false},
		{"not in the repository", []string{"--flake", flakeAt(strings.Repeat("ab", 20)), "--allowed-signers", r.signers, "--repo", r.dir},
			"verifying the --flake commit", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.run(t, append(base, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || errorsIsUsage(err) != tt.usage {
				t.Errorf("provision %q = %v; want error containing %q (usage=%t)", tt.args, err, tt.want, tt.usage)
			}
		})
	}
	if m := e.fake.Mutations(); len(m) != 0 {
		t.Errorf("refused provisioning made mutating calls %v", m)
	}
	if _, err := e.run(t, append(base, "--flake", flakeAt(r.signed), "--allowed-signers", r.signers, "--repo", r.dir)...); err != nil {
		t.Errorf("provision with a signed, pinned flake = %v", err)
	}
}

func errorsIsUsage(err error) bool { return errors.Is(err, ErrUsage) }
