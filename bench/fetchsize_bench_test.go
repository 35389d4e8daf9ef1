package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// BenchmarkBigPush pushes two near-identical 256 MiB files to main (the
// push is a few hundred KB: one blob compresses 1000:1, the other is a
// delta of it) and measures the peak RSS of the agent's next fetch above
// its RSS before fetching. The fetch must refuse the push
// (repository.maxObjectSize) without inflating it. The same with two
// 15 MiB files, just under the default limit, shows what an accepted push
// of the largest objects costs.
func BenchmarkBigPush(b *testing.B) {
	for b.Loop() {
		for _, c := range []struct {
			name    string
			size    int
			refused bool
		}{{"256MiB", 256 << 20, true}, {"15MiB", 15 << 20, false}} {
			w := gittest.NewRepo(b)
			bare := gittest.NewBare(b)
			w.Commit(b, map[string]string{"file.txt": "x\n"}, "first")
			w.Push(b, bare, "HEAD:refs/heads/main")
			srv := gittest.StartHTTPServer(b, bare, "")
			dir := filepath.Join(b.TempDir(), "repo.git")
			goFetch(b, dir, srv.URL, 1)
			pushBigBlobs(b, bare, c.size)
			g := goFetchMayFail(b, dir, srv.URL, 1)
			if refused := strings.Contains(g.Err, "maxObjectSize"); refused != c.refused || !refused && g.Err != "" {
				b.Fatalf("fetch of two %s files = %q; want refused %v", c.name, g.Err, c.refused)
			}
			b.ReportMetric(float64(g.MaxRSS-g.Idle)/1024, c.name+"-peakRSS-above-idle-MiB")
			b.ReportMetric(float64(g.MaxRSS)/1024, c.name+"-peakRSS-MiB")
			b.Logf("%s: %s", c.name, g.Err)
		}
	}
}

// pushBigBlobs commits two files of size bytes that differ in their last
// line onto main of bareDir with git fast-import, streamed (the files are
// never whole in this process).
func pushBigBlobs(tb testing.TB, bareDir string, size int) {
	tb.Helper()
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir, cmd.Env = bareDir, gittest.Env(tb.TempDir())
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	bw := bufio.NewWriterSize(in, 1<<20)
	line := strings.Repeat("0123456789abcdef", 4)[:63] + "\n"
	for i := range 2 {
		tail := fmt.Sprintf("copy %d\n", i)
		n := size / len(line)
		fmt.Fprintf(bw, "blob\nmark :%d\ndata %d\n", i+1, n*len(line)+len(tail))
		for range n {
			bw.WriteString(line)
		}
		bw.WriteString(tail + "\n")
	}
	msg := "two big files\n"
	fmt.Fprintf(bw, "commit refs/heads/main\ncommitter T <t@avalanche.invalid> 1700000000 +0000\ndata %d\n%sfrom refs/heads/main^0\n", len(msg), msg)
	fmt.Fprintf(bw, "M 100644 :1 big/0.bin\nM 100644 :2 big/1.bin\n\n")
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("git fast-import: %v: %s", err, out)
	}
}

// BenchmarkHostCopies compares, per host kind, the agent's copy of a
// generated history (2,000 commits; 20,000 with AVALANCHE_BENCH_FULL=1)
// served by git http-backend with uploadpack.allowFilter: a host that
// evaluates (every object, as before), a builder-mode host that waits for
// releases (commits only, filter tree:0) and TipTrees (commits and the
// head's tree), against `git clone` of the same server: --bare, --bare
// --filter=tree:0, and --filter=tree:0 with its checkout. Bytes on disk,
// first fetch and an incremental fetch of 1% more commits: wall time and
// peak RSS.
func BenchmarkHostCopies(b *testing.B) {
	commits := samples(2000, 20000)
	w := gittest.NewRepo(b)
	bare := gittest.NewBare(b)
	w.Commit(b, map[string]string{"file.txt": "x\n"}, "first")
	w.Push(b, bare, "HEAD:refs/heads/main")
	gittest.GenerateHistory(b, bare, "main", commits, 1, 13000)
	if out, err := exec.Command("git", "-C", bare, "config", "uploadpack.allowFilter", "true").CombinedOutput(); err != nil {
		b.Fatalf("git config: %v: %s", err, out)
	}
	srv := gittest.StartHTTPServer(b, bare, "")
	kinds := []struct {
		name string
		env  []string
		git  []string // git clone arguments of the nearest git copy
	}{
		{"evaluating", nil, []string{"--bare"}},
		{"commits-only", []string{childContentsEnv + "=commits"}, []string{"--bare", "--filter=tree:0"}},
		// git's nearest: a partial clone that checks the head out (its
		// blobs fetched on demand), work tree included in its bytes.
		{"tip-trees", []string{childContentsEnv + "=tip-trees"}, []string{"--filter=tree:0"}},
	}
	for b.Loop() {
		dirs := map[string][2]string{}
		for _, k := range kinds {
			g, c := filepath.Join(b.TempDir(), "repo.git"), filepath.Join(b.TempDir(), "cli.git")
			dirs[k.name] = [2]string{g, c}
			report(b, k.name+"-clone", goFetch(b, g, srv.URL, 1, k.env...), gitClone(b, c, srv.URL, k.git...))
		}
		gittest.GenerateHistory(b, bare, "main", commits/100, 1, 13000)
		for _, k := range kinds {
			d := dirs[k.name]
			report(b, k.name+"-incremental", goFetch(b, d[0], srv.URL, 1, k.env...), gitFetchOrigin(b, d[1]))
			b.ReportMetric(float64(duSize(d[0]))/mb, k.name+"-gitsync-MiB")
			b.ReportMetric(float64(duSize(d[1]))/mb, k.name+"-git-MiB")
		}
	}
}

func report(b *testing.B, step string, g, c fetchResult) {
	b.ReportMetric(float64(g.MaxRSS)/1024, step+"-gitsync-peakRSS-MiB")
	b.ReportMetric(float64(c.MaxRSS)/1024, step+"-git-peakRSS-MiB")
	b.ReportMetric(g.Wall.Seconds(), step+"-gitsync-s")
	b.ReportMetric(c.Wall.Seconds(), step+"-git-s")
}

// gitClone runs `git clone --quiet [args] url dir` under /usr/bin/time -v.
func gitClone(tb testing.TB, dir, url string, args ...string) fetchResult {
	argv := append([]string{"-v", "git", "clone", "--quiet"}, args...)
	return timed(tb, "", append(argv, url, dir)...)
}

// gitFetchOrigin runs `git fetch origin` (main) in dir, a clone made by
// gitClone (a partial clone fetches with its filter again), or `git pull`
// where it has a work tree.
func gitFetchOrigin(tb testing.TB, dir string) fetchResult {
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		return timed(tb, dir, "-v", "git", "pull", "--quiet", "--ff-only", "origin", "main")
	}
	return timed(tb, dir, "-v", "git", "fetch", "--quiet", "origin", "+refs/heads/main:refs/heads/main")
}
