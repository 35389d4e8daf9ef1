package gitsync

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// Environment of the child process of TestFetchSyncsObjectsBeforeRefs.
const (
	orderDirEnv = "GITSYNC_TEST_ORDER_DIR"
	orderURLEnv = "GITSYNC_TEST_ORDER_URL"
)

// TestChildFetch is the body of TestFetchSyncsObjectsBeforeRefs's child:
// one Fetch of an existing copy. It does nothing in a normal test run.
func TestChildFetch(t *testing.T) {
	dir := os.Getenv(orderDirEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestFetchSyncsObjectsBeforeRefs")
	}
	r := &Repo{Dir: dir, Remote: Remote{URL: os.Getenv(orderURLEnv)}, Branches: []string{"main"}}
	if res := mustFetch(t, r); !res.Changed || res.Recloned {
		t.Fatalf("Fetch = %+v; want Changed, not Recloned", res)
	}
}

// TestFetchSyncsObjectsBeforeRefs traces the file system calls of a fetch
// into an existing copy: the pack and its index are synced, renamed into
// place and their directory synced before the branch's ref is touched, and
// the ref itself is written to a lock file, synced, renamed over the ref,
// and its directory synced. So a power cut cannot leave a ref naming
// objects that are not on the disk, nor an empty ref.
func TestFetchSyncsObjectsBeforeRefs(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is needed (.ci/install installs it)")
	}
	f, _ := newFixture(t)
	srv := gittest.StartHTTPServer(t, f.bare, "")
	r := newRepo(t, Remote{URL: srv.URL})
	mustFetch(t, r)
	gittest.GenerateHistory(t, f.bare, "main", 5, 3, 512)
	log := filepath.Join(t.TempDir(), "strace.log")
	cmd := exec.Command(strace, "-f", "-qq", "-y", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2",
		"-o", log, os.Args[0], "-test.run=^TestChildFetch$", "-test.v")
	cmd.Env = append(os.Environ(), orderDirEnv+"="+r.Dir, orderURLEnv+"="+srv.URL)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS: TestChildFetch") {
		t.Fatalf("child fetch under strace: %v\n%s", err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	pack := regexp.QuoteMeta(filepath.Join(r.Dir, "objects", "pack"))
	ref := regexp.QuoteMeta(filepath.Join(r.Dir, "refs", "heads", "main"))
	wantInOrder(t, string(b), []string{
		`fsync\(\d+<` + pack + `/tmp_recv_\d+>\)`,                                       // the pack's data
		`fsync\(\d+<` + pack + `/pack-[0-9a-f]{40}\.idx\.tmp>\)`,                        // its index
		`rename.*"` + pack + `/pack-[0-9a-f]{40}\.idx"`,                                 // the index in place
		`rename.*"` + pack + `/pack-[0-9a-f]{40}\.pack"`,                                // then the pack
		`fsync\(\d+<` + pack + `>\)`,                                                    // both renames durable
		`fsync\(\d+<` + ref + `\.lock>\)`,                                               // the new ref's data
		`rename.*"` + ref + `\.lock".*"` + ref + `"`,                                    // the ref moved
		`fsync\(\d+<` + regexp.QuoteMeta(filepath.Join(r.Dir, "refs", "heads")) + `>\)`, // durable
	}, `(openat\(.*"`+ref+`(\.lock)?", O_(WRONLY|RDWR)|rename.*"`+ref+`"\))`)
}

// wantInOrder checks that each pattern matches a line of log after the
// previous pattern's line, and that no write of the ref (refWrite) comes
// before the objects are durable (the 5th pattern).
func wantInOrder(t *testing.T, log string, patterns []string, refWrite string) {
	t.Helper()
	lines := strings.Split(log, "\n")
	firstRef := -1
	for i, l := range lines {
		if regexp.MustCompile(refWrite).MatchString(l) {
			firstRef = i
			break
		}
	}
	at := 0
	for n, p := range patterns {
		re := regexp.MustCompile(p)
		found := -1
		for i := at; i < len(lines); i++ {
			if re.MatchString(lines[i]) {
				found = i
				break
			}
		}
		if found < 0 {
			t.Fatalf("no system call matching %s after line %d of the fetch's trace:\n%s", p, at, strings.Join(lines[at:], "\n"))
		}
		if n == 4 && firstRef >= 0 && firstRef < found {
			t.Fatalf("the fetch touched the ref before its objects were durable:\n%s", strings.Join(lines[:found+1], "\n"))
		}
		at = found + 1
	}
}
