package gitsync

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// trustSoon shortens racyWindow for the test, so that a copy counts as
// settled after 50 ms instead of 2 s. The kernel's file timestamps tick
// every few milliseconds, well inside it.
func trustSoon(t *testing.T) {
	old := racyWindow
	racyWindow = 50 * time.Millisecond
	t.Cleanup(func() { racyWindow = old })
}

// settle waits until r's copy is older than racyWindow and polls once
// more: that poll must check the copy and record its fingerprint, so that
// the next unchanged poll only stats files.
func settle(t *testing.T, r *Repo) {
	t.Helper()
	time.Sleep(2 * racyWindow)
	if res := mustFetch(t, r); res.Changed {
		t.Fatalf("Fetch of a settled copy = %+v; want unchanged", res)
	}
	if r.known == nil {
		t.Fatal("Fetch of a settled, checked copy recorded no fingerprint")
	}
}

// TestFetchNoticesRewriteOfTrustedCopy changes a trusted copy in ways
// that leave it a valid repository: the next poll must bring it back to
// the remote's heads (or leave it alone when nothing it holds changed).
func TestFetchNoticesRewriteOfTrustedCopy(t *testing.T) {
	trustSoon(t)
	f, first := newFixture(t)
	second := f.commit(t, "second")
	for _, tc := range []struct {
		name        string
		change      func(t *testing.T, dir string)
		wantChanged bool
	}{
		{"branch ref rewritten in place, same length", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "refs", "heads", "main"), first+"\n")
		}, true},
		{"replaced by an older copy with its modification times", func(t *testing.T, dir string) {
			old := olderCopy(t, f, first)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(old, dir); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"repacked", func(t *testing.T, dir string) {
			f.work.Git(t, "--git-dir", dir, "repack", "-q", "-a", "-d")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, Remote{URL: f.bare})
			mustFetch(t, r)
			settle(t, r)
			tc.change(t, r.Dir)

			res := mustFetch(t, r)
			if res.Changed != tc.wantChanged || res.Recloned {
				t.Errorf("Fetch after the change = %+v; want Changed %v, not Recloned", res, tc.wantChanged)
			}
			wantHeads(t, res, map[string]string{"main": second})
			if got := f.work.Git(t, "--git-dir", r.Dir, "rev-parse", "main"); got != second {
				t.Errorf("local main after Fetch = %.7s; want %.7s", got, second)
			}
			settle(t, r)
		})
	}
}

// olderCopy clones the remote of f into a directory of its own, with main
// reset to commit, and backdates its files like a restored backup
// (cp -a keeps modification times; inodes and change times are new).
func olderCopy(t *testing.T, f *fixture, commit string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "old.git")
	f.work.Git(t, "clone", "-q", "--bare", f.bare, dir)
	f.work.Git(t, "--git-dir", dir, "update-ref", "refs/heads/main", commit)
	past := time.Now().Add(-time.Hour)
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, past, past)
	})
	if err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(t.TempDir(), "aside.git")
	if out, err := exec.Command("cp", "-a", dir, aside).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	return aside
}

// TestAnswersRemembered shows that IsAncestor and VerifyCommit answer a
// question they answered before without the repository, and that a
// verdict is forgotten when a key file changes.
func TestAnswersRemembered(t *testing.T) {
	gittest.Require(t, "ssh-keygen")
	trustSoon(t)
	f, first := newFixture(t)
	aliceKey, alicePub := gittest.NewSSHKey(t, t.TempDir(), "alice")
	signed := f.work.CommitSSHSigned(t, map[string]string{"a": "1"}, "alice signs", aliceKey)
	f.push(t)
	r := newRepo(t, Remote{URL: f.bare})
	mustFetch(t, r)
	allowed := writeTemp(t, "allowed_signers", gittest.AllowedSigner("alice@fleet", alicePub)+"\n")
	signers := Signers{AllowedSignersFile: allowed}
	time.Sleep(2 * racyWindow)
	ctx := context.Background()
	ask := func(when string, wantSigner string, wantErr error) {
		t.Helper()
		if ok, err := r.IsAncestor(ctx, first, signed); !ok || err != nil {
			t.Errorf("%s: IsAncestor(first, signed) = %v, %v; want true", when, ok, err)
		}
		if ok, err := r.IsAncestor(ctx, signed, first); ok || err != nil {
			t.Errorf("%s: IsAncestor(signed, first) = %v, %v; want false", when, ok, err)
		}
		got, err := r.VerifyCommit(ctx, signed, signers)
		if got != wantSigner || !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
			t.Errorf("%s: VerifyCommit = %q, %v; want %q, %v", when, got, err, wantSigner, wantErr)
		}
	}
	ask("first", "alice@fleet", nil)
	if err := os.RemoveAll(r.Dir); err != nil {
		t.Fatal(err)
	}
	ask("without the repository", "alice@fleet", nil)

	mustFetch(t, r)
	writeFile(t, allowed, "# alice left\n")
	time.Sleep(2 * racyWindow)
	ask("after alice was removed from the allowed signers", "", ErrBadSignature)
}

// Environment of the child process of TestUnchangedPollOpensNoFile.
const (
	pollsDirEnv = "GITSYNC_TEST_POLLS_DIR"
	pollsURLEnv = "GITSYNC_TEST_POLLS_URL"
)

// markerDir is opened (and not found) by the child between its phases, so
// that its strace log can be split.
const markerDir = "/nonexistent-gitsync-marker/"

// TestChildPolls is the body of TestUnchangedPollOpensNoFile's child: a
// first poll that checks the copy, unchanged polls, then a poll after HEAD
// was rewritten. It does nothing in a normal test run.
func TestChildPolls(t *testing.T) {
	dir := os.Getenv(pollsDirEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestUnchangedPollOpensNoFile")
	}
	trustSoon(t)
	r := &Repo{Dir: dir, Remote: Remote{URL: os.Getenv(pollsURLEnv)}, Branches: []string{"main", "testing/absent"}}
	time.Sleep(2 * racyWindow)
	mustFetch(t, r)
	os.Open(markerDir + "unchanged")
	for range 5 {
		mustFetch(t, r)
	}
	os.Open(markerDir + "rewritten")
	head, err := os.ReadFile(filepath.Join(dir, "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "HEAD"), string(head))
	os.Open(markerDir + "after")
	mustFetch(t, r)
}

// TestUnchangedPollOpensNoFile traces the child's file opens: once the
// copy is checked and settled, an unchanged poll opens no file of the
// repository; after a file was rewritten, the next poll reads it again.
func TestUnchangedPollOpensNoFile(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is needed (.ci/install installs it)")
	}
	f, _ := newFixture(t)
	srv := gittest.StartHTTPServer(t, f.bare, "")
	r := newRepo(t, Remote{URL: srv.URL})
	mustFetch(t, r)
	log := filepath.Join(t.TempDir(), "strace.log")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=openat", "-o", log, os.Args[0], "-test.run=^TestChildPolls$", "-test.v")
	cmd.Env = append(os.Environ(), pollsDirEnv+"="+r.Dir, pollsURLEnv+"="+srv.URL)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS: TestChildPolls") {
		t.Fatalf("child polls under strace: %v\n%s", err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	opened := openedByPhase(string(b), r.Dir)
	if got := opened["unchanged"]; len(got) > 0 {
		t.Errorf("5 unchanged polls of a settled copy opened %d files (%v ...); want no file of the repository", len(got), got[:min(len(got), 5)])
	}
	if got := opened["after"]; !strings.Contains(strings.Join(got, " "), filepath.Join(r.Dir, "HEAD")) {
		t.Errorf("the poll after HEAD was rewritten opened %v; want HEAD read again", got)
	}
	if len(opened[""]) == 0 {
		t.Errorf("the first poll opened no file of the repository; the trace is not working:\n%s", b)
	}
}

// openedByPhase returns, for each phase of the child's strace log (named
// by the marker opened before it, "" at first), the paths under dir it
// opened.
func openedByPhase(log, dir string) map[string][]string {
	out := map[string][]string{}
	phase := ""
	for line := range strings.Lines(log) {
		_, rest, ok := strings.Cut(line, `openat(AT_FDCWD, "`)
		if !ok {
			continue
		}
		path, _, _ := strings.Cut(rest, `"`)
		if name, ok := strings.CutPrefix(path, markerDir); ok {
			phase = name
			continue
		}
		if strings.HasPrefix(path, dir) {
			out[phase] = append(out[phase], path)
		}
	}
	return out
}

// TestConcurrentUse polls, asks ancestry questions and pushes at the same
// time (run it with -race).
func TestConcurrentUse(t *testing.T) {
	trustSoon(t)
	f, first := newFixture(t)
	r := newRepo(t, Remote{URL: f.bare}, "main", "testing/absent")
	mustFetch(t, r)
	ctx := context.Background()
	stop := make(chan struct{})
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				res, err := r.Fetch(ctx)
				if err == nil {
					var ok bool
					ok, err = r.IsAncestor(ctx, first, res.Heads["main"])
					if err == nil && !ok {
						err = errors.New("first commit is no ancestor of " + res.Heads["main"])
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var last string
	for i := range 5 {
		last = f.commit(t, "concurrent "+string(rune('a'+i)))
		time.Sleep(2 * racyWindow)
	}
	close(stop)
	wg.Wait()
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent poller: %v", err)
		}
	}
	wantHeads(t, mustFetch(t, r), map[string]string{"main": last})
}
