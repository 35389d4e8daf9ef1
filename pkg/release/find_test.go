package release_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// TestPublishAndFind publishes a release over smart HTTP and finds it on
// a host that fetched main and the release branch in one advertisement.
func TestPublishAndFind(t *testing.T) {
	f := newFleet(t)
	c := f.commit(t, "first")
	rel := sample(c)
	id := f.publish(t, rel, f.signer)

	got, err := f.find(t, c)
	if err != nil {
		t.Fatalf("Find(%s) = %v", c, err)
	}
	rel.Version = release.Version
	if diff := cmp.Diff(rel, got.Release); diff != "" {
		t.Errorf("Find(%s) release (-published +found):\n%s", c, diff)
	}
	if got.ID != id || got.Signer != "builder" {
		t.Errorf("Find(%s) = ID %s, signer %q; want %s, builder", c, got.ID, got.Signer, id)
	}

	// An unchanged poll still costs one ref advertisement, nothing else.
	f.server.Reset()
	res, err := f.host.Fetch(context.Background())
	if err != nil || res.Changed {
		t.Fatalf("second Fetch = %+v, %v; want unchanged", res, err)
	}
	if n, posts := len(f.server.Requests()), f.server.Count("POST"); n != 1 || posts != 0 {
		t.Errorf("unchanged poll made %d requests (%d POST); want 1 GET", n, posts)
	}
}

// TestSignatureChecksWithSSHKeygen checks the release signature with
// OpenSSH itself: ssh-keygen -Y verify in the release namespace accepts it
// under the builder principal, and the git namespace does not.
func TestSignatureChecksWithSSHKeygen(t *testing.T) {
	gittest.Require(t, "ssh-keygen")
	f := newFleet(t)
	id := f.publish(t, sample(f.commit(t, "first")), f.signer)
	raw := f.work.Git(t, "-C", f.bare, "cat-file", "commit", id)
	sig, payload := splitSignature(t, raw+"\n")
	sigFile := writeFile(t, "sig", sig)
	verify := func(namespace string) error {
		cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", f.allowed, "-I", "builder", "-n", namespace, "-s", sigFile)
		cmd.Stdin = strings.NewReader(payload)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return errors.New(string(out))
		}
		return nil
	}
	if err := verify(release.Namespace); err != nil {
		t.Errorf("ssh-keygen -Y verify -n %s: %v", release.Namespace, err)
	}
	if err := verify("git"); err == nil {
		t.Errorf("ssh-keygen -Y verify -n git accepted a release signature")
	}
}

// splitSignature cuts the gpgsig header out of a raw commit object.
func splitSignature(t *testing.T, raw string) (sig, payload string) {
	t.Helper()
	var out, s strings.Builder
	in := false
	for _, line := range strings.SplitAfter(raw, "\n") {
		switch {
		case strings.HasPrefix(line, "gpgsig "):
			in = true
			s.WriteString(strings.TrimPrefix(line, "gpgsig "))
		case in && strings.HasPrefix(line, " "):
			s.WriteString(line[1:])
		default:
			in = false
			out.WriteString(line)
		}
	}
	if s.Len() == 0 {
		t.Fatalf("no gpgsig header in %q", raw)
	}
	return s.String(), out.String()
}

func TestFindNotYet(t *testing.T) {
	f := newFleet(t)
	first := f.commit(t, "first")
	if _, err := f.find(t, first); !errors.Is(err, release.ErrNotYet) || release.IsCommitFault(err) {
		t.Errorf("Find without a release branch = %v; want ErrNotYet, not a commit fault", err)
	}
	f.publish(t, sample(first), f.signer)
	second := f.commit(t, "second")
	_, err := f.find(t, second)
	if !errors.Is(err, release.ErrNotYet) {
		t.Errorf("Find(%s) with only a release of %s = %v; want ErrNotYet", second, first, err)
	}
	t.Logf("message: %v", err)
}

// TestFindRefusesUntrusted: every release not signed by the builder key in
// the release namespace, under the builder principal, is refused with a
// message naming the reason, and never as a commit fault: anyone who can
// push can publish one, so it says nothing about the commit.
func TestFindRefusesUntrusted(t *testing.T) {
	f := newFleet(t)
	other, _ := gittest.NewSSHKey(t, t.TempDir(), "intruder")
	intruder, err := release.LoadSigner(other)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := release.LoadSigner(f.aliceKey)
	if err != nil {
		t.Fatal(err)
	}
	builderPub := strings.TrimSpace(readFile(t, f.builderKey+".pub"))
	tests := []struct {
		name    string
		publish func(t *testing.T, commit string)
		allowed string // replaces the allowed signers file when set
		want    string
	}{
		{"unsigned", func(t *testing.T, c string) { f.pushUnsigned(t, sample(c)) }, "", "carries no signature"},
		{"unknown key", func(t *testing.T, c string) { f.publish(t, sample(c), intruder) }, "", "is not allowed to sign in namespace avalanche-release as builder"},
		{"commit signer key", func(t *testing.T, c string) { f.publish(t, sample(c), alice) }, "", "is not allowed to sign"},
		{"builder key in the git namespace", func(t *testing.T, c string) { f.pushGitSigned(t, sample(c)) }, "", `namespace "git", want "avalanche-release"`},
		{"builder key under another principal", func(t *testing.T, c string) { f.publish(t, sample(c), f.signer) },
			`ci namespaces="avalanche-release" ` + builderPub + "\n", "is not allowed to sign"},
		{"builder entry that may also sign commits", func(t *testing.T, c string) { f.publish(t, sample(c), f.signer) },
			"builder " + builderPub + "\n", "also accepts commit signatures"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.commit(t, tt.name)
			tt.publish(t, c)
			if tt.allowed != "" {
				old := f.allowed
				f.allowed = writeFile(t, "allowed_signers", tt.allowed)
				defer func() { f.allowed = old }()
			}
			_, err := f.find(t, c)
			if !errors.Is(err, release.ErrUntrusted) || release.IsCommitFault(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Find = %v; want ErrUntrusted (not a commit fault) mentioning %q", err, tt.want)
			}
			t.Logf("message: %v", err)
		})
	}
}

// TestFindSkipsUntrustedNewer: an unsigned release pushed on top of the
// builder's cannot shadow it.
func TestFindSkipsUntrustedNewer(t *testing.T) {
	f := newFleet(t)
	c := f.commit(t, "first")
	good := f.publish(t, sample(c), f.signer)
	forged := sample(c)
	forged.Hosts["raccoon00"] = release.Host{System: "aarch64-linux", OutPath: "/nix/store/" + strings.Repeat("c", 32) + "-nixos-system-raccoon00-evil"}
	f.pushUnsigned(t, forged)
	got, err := f.find(t, c)
	if err != nil || got.ID != good {
		t.Fatalf("Find = %s, %v; want the signed release %s", got.ID, err, good)
	}
}

// TestPushRejectedWhenBranchMoved: a second builder with a stale copy
// cannot overwrite the first one's release.
func TestPushRejectedWhenBranchMoved(t *testing.T) {
	f := newFleet(t)
	c := f.commit(t, "first")
	stale := f.mirror(t)
	if _, err := stale.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	winner := f.publish(t, sample(c), f.signer)
	old, mine, err := release.Commit(stale.Dir, "", sample(c), f.signer)
	if err != nil {
		t.Fatal(err)
	}
	err = stale.Push(context.Background(), release.Branch, old, mine)
	if !errors.Is(err, gitsync.ErrPushRejected) {
		t.Fatalf("Push from a stale copy = %v; want ErrPushRejected", err)
	}
	t.Logf("message: %v", err)
	if head := f.work.Git(t, "-C", f.bare, "rev-parse", "refs/heads/"+release.Branch); head != winner {
		t.Errorf("release branch = %s after the rejected push; want %s", head, winner)
	}
}

// pushUnsigned commits rel without a signature with the git CLI.
func (f *fleet) pushUnsigned(t *testing.T, rel release.Release) {
	t.Helper()
	f.commitRelease(t, rel, nil)
}

// pushGitSigned commits rel signed by the builder key the way git signs
// commits (namespace git).
func (f *fleet) pushGitSigned(t *testing.T, rel release.Release) {
	t.Helper()
	f.commitRelease(t, rel, []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + f.builderKey})
}

func (f *fleet) commitRelease(t *testing.T, rel release.Release, sign []string) {
	t.Helper()
	doc, err := rel.Encode()
	if err != nil {
		t.Fatal(err)
	}
	w := gittest.NewRepo(t)
	if _, err := os.Stat(f.bare); err != nil {
		t.Fatal(err)
	}
	w.Git(t, "fetch", "-q", f.bare, "+refs/heads/*:refs/remotes/origin/*")
	if out := w.Git(t, "branch", "-r", "--list", "origin/"+release.Branch); out != "" {
		w.Git(t, "checkout", "-q", "-B", "rel", "origin/"+release.Branch)
	} else {
		w.Git(t, "checkout", "-q", "--orphan", "rel")
	}
	if err := os.WriteFile(filepath.Join(w.Dir, release.File), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	w.Git(t, "add", release.File)
	args := append(sign, "commit", "-q", "-m", "release")
	if len(sign) > 0 {
		args = append(args, "-S")
	}
	w.Git(t, args...)
	w.Push(t, f.bare, "rel:refs/heads/"+release.Branch)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
