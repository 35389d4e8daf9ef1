package gitsync

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// Environment of the child process that TestFetchSurvivesKill re-executes.
const (
	childDirEnv = "GITSYNC_TEST_CHILD_DIR"
	childURLEnv = "GITSYNC_TEST_CHILD_URL"
)

// TestMain runs the child process of TestFetchSurvivesKill when it is one
// (a Fetch that the parent kills), and the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		r := &Repo{Dir: dir, Remote: Remote{URL: os.Getenv(childURLEnv)}, Branches: []string{"main"}}
		if _, err := r.Fetch(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFetchSurvivesKill(t *testing.T) {
	f, _ := newFixture(t)
	srv := gittest.StartHTTPServer(t, f.bare, "")
	r := newRepo(t, Remote{URL: srv.URL})
	srv.WriteDelay = time.Millisecond

	for i, tc := range []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"during clone", func(t *testing.T) { os.RemoveAll(r.Dir) }},
		{"during incremental fetch", func(t *testing.T) { mustFetch(t, r) }},
		{"during second incremental fetch", func(t *testing.T) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			tip := gittest.GenerateHistory(t, f.bare, "main", 100, 30, 1024)
			srv.Reset()
			killChildMidFetch(t, r, srv, time.Duration(i*50)*time.Millisecond)
			res := mustFetch(t, r)
			wantHeads(t, res, map[string]string{"main": tip})
			if !res.Changed {
				t.Errorf("Fetch after kill = %+v; want Changed", res)
			}
			assertNoTempDirs(t, r.Dir)
			if res := mustFetch(t, r); res.Changed {
				t.Errorf("second Fetch after kill = %+v; want unchanged", res)
			}
		})
	}
}

// killChildMidFetch runs a Fetch of r in a child process and SIGKILLs it
// once the pack transfer has been under way for delay.
func killChildMidFetch(t *testing.T, r *Repo, srv *gittest.HTTPServer, delay time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childDirEnv+"="+r.Dir, childURLEnv+"="+r.Remote.URL)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for srv.Started("POST") == 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(delay)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err := cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		t.Fatalf("child fetch ended before it was killed (%v); make the repository bigger %+v", fmt.Sprint(err), srv.Requests())
	}
}
