package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// signedCommit writes the flake and commits it signed with keyFile (or
// unsigned when keyFile is empty), then pushes main.
func signedCommit(t *testing.T, h *host, keyFile, msg string) string {
	t.Helper()
	if err := nixtest.WriteFlake(h.up.Work, h.opts); err != nil {
		t.Fatal(err)
	}
	gitRun(t, h.up.Work, "add", "--all")
	args := []string{"commit", "--quiet", "--allow-empty", "-m", msg}
	if keyFile != "" {
		args = append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + keyFile}, append(args, "-S")...)
	}
	gitRun(t, h.up.Work, args...)
	return gitPush(t, h, "HEAD:refs/heads/main")
}

// TestSignedCommitsOnly: with allowed signers configured, only commits
// signed by an allowed key deploy; the others are refused and shown.
func TestSignedCommitsOnly(t *testing.T) {
	gittest.Require(t, "ssh-keygen")
	keys := t.TempDir()
	operator, operatorPub := gittest.NewSSHKey(t, keys, "operator")
	stranger, _ := gittest.NewSSHKey(t, keys, "stranger")
	signers := filepath.Join(keys, "allowed_signers")
	os.WriteFile(signers, []byte(gittest.AllowedSigner("operator@avalanche", operatorPub)+"\n"), 0o644)
	h := newHost(t, func(c map[string]any) { c["verify"] = map[string]any{"allowedSignersFile": signers} })

	good := signedCommit(t, h, operator, "signed by the operator")
	h.start()
	if s := h.status(); s.Deployed == nil || s.Deployed.Commit != good {
		t.Fatalf("deployed = %+v; want the signed %s", s.Deployed, good)
	}
	for _, tt := range []struct {
		name, key, want string
	}{
		{"unsigned", "", "not signed"},
		{"signed by a stranger", stranger, "bad signature"},
	} {
		h.opts.Marker = tt.name
		c := signedCommit(t, h, tt.key, tt.name)
		r := h.sync(false)
		if r.OK || !strings.Contains(r.Error, tt.want) {
			t.Errorf("%s: sync = %+v; want refused with %q", tt.name, r, tt.want)
		}
		if s := h.status(); s.Deployed.Commit != good || !strings.Contains(s.LastError, short(c)) {
			t.Errorf("%s: deployed %s, last error %q; want %s kept and %s named", tt.name, s.Deployed.Commit, s.LastError, good, short(c))
		}
	}
	if got := h.activations(); len(got) != 1 {
		t.Errorf("activations = %q; want only the signed commit's", got)
	}
}

func short(c string) string { return c[:12] }
