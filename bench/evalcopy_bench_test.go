package bench

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// BenchmarkEvaluatingCopy compares, side by side in one run, the copy of
// a host that evaluates as it was (every object) and as it is now
// (TipTrees: the commits and the heads' trees) against `git clone
// --filter=blob:none` of the same server (its checkout included), for two
// histories of 2,000 commits (20,000 with AVALANCHE_BENCH_FULL=1) served by
// git http-backend with uploadpack.allowFilter: "added", row 13's, where
// each commit adds a file (so the tip's tree holds every file ever
// written), and "edited", where each commit rewrites one file of a tenth
// as many (the tip's tree stays 2,000 files in the full form). Bytes on disk, the first fetch and
// an incremental fetch of 1% more commits: wall time and peak RSS.
func BenchmarkEvaluatingCopy(b *testing.B) {
	commits := samples(2000, 20000)
	histories := []struct {
		name string
		gen  func(tb testing.TB, bare string, n int)
	}{
		{"added", func(tb testing.TB, bare string, n int) { gittest.GenerateHistory(tb, bare, "main", n, 1, 13000) }},
		{"edited", func(tb testing.TB, bare string, n int) { gittest.GenerateEdits(tb, bare, "main", n, commits/10, 13000) }},
	}
	for _, h := range histories {
		b.Run(h.name, func(b *testing.B) {
			bare := filterServer(b)
			h.gen(b, bare, commits)
			srv := gittest.StartHTTPServer(b, bare, "")
			for b.Loop() {
				evaluatingCopies(b, srv.URL, func() { h.gen(b, bare, commits/100) })
			}
		})
	}
}

// evaluatingCopies makes the three copies of url, runs more (which adds
// commits upstream), fetches again, and reports each.
func evaluatingCopies(b *testing.B, url string, more func()) {
	kinds := []struct {
		name string
		env  []string
	}{{"today", nil}, {"now", []string{childContentsEnv + "=tip-trees"}}}
	dirs := map[string]string{}
	for _, k := range kinds {
		dirs[k.name] = filepath.Join(b.TempDir(), "repo.git")
		reportOne(b, k.name+"-clone", goFetch(b, dirs[k.name], url, 1, k.env...))
	}
	gitDir := filepath.Join(b.TempDir(), "cli")
	// A large enough post buffer that git sends the checkout's request for
	// the head's blobs with a Content-Length: Go's CGI handler refuses
	// chunked request bodies.
	reportOne(b, "git-blobless-clone", gitClone(b, gitDir, url, "--filter=blob:none", "--config=http.postBuffer=1073741824"))
	more()
	for _, k := range kinds {
		reportOne(b, k.name+"-incremental", goFetch(b, dirs[k.name], url, 1, k.env...))
		b.ReportMetric(float64(duSize(dirs[k.name]))/mb, k.name+"-MiB")
	}
	reportOne(b, "git-blobless-incremental", gitFetchOrigin(b, gitDir))
	b.ReportMetric(float64(duSize(gitDir))/mb, "git-blobless-MiB")
}

func reportOne(b *testing.B, step string, r fetchResult) {
	b.ReportMetric(float64(r.MaxRSS)/1024, step+"-peakRSS-MiB")
	b.ReportMetric(r.Wall.Seconds(), step+"-s")
}

// filterServer returns a bare repository with one commit on main whose
// server applies partial-clone filters.
func filterServer(b *testing.B) string {
	w := gittest.NewRepo(b)
	bare := gittest.NewBare(b)
	w.Commit(b, map[string]string{"file.txt": "x\n"}, "first")
	w.Push(b, bare, "HEAD:refs/heads/main")
	if out, err := exec.Command("git", "-C", bare, "config", "uploadpack.allowFilter", "true").CombinedOutput(); err != nil {
		b.Fatalf("git config: %v: %s", err, out)
	}
	return bare
}
