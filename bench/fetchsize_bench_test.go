package bench

import (
	"bufio"
	"fmt"
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
// (repository.maxObjectSize) without inflating it.
func BenchmarkBigPush(b *testing.B) {
	w := gittest.NewRepo(b)
	bare := gittest.NewBare(b)
	w.Commit(b, map[string]string{"file.txt": "x\n"}, "first")
	w.Push(b, bare, "HEAD:refs/heads/main")
	srv := gittest.StartHTTPServer(b, bare, "")
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "repo.git")
		goFetch(b, dir, srv.URL, 1)
		pushBigBlobs(b, bare, 256<<20)
		srv.Reset()
		g := goFetchMayFail(b, dir, srv.URL, 1)
		if !strings.Contains(g.Err, "maxObjectSize") {
			b.Fatalf("fetch of the big push = %q; want it refused over maxObjectSize", g.Err)
		}
		b.ReportMetric(float64(g.MaxRSS-g.Idle)/1024, "peakRSS-above-idle-MiB")
		b.ReportMetric(float64(g.MaxRSS)/1024, "peakRSS-MiB")
		b.Logf("refused: %s", g.Err)
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
