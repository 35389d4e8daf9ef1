package gitsync

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// BenchmarkFetchUnchanged measures one poll of an unchanged remote over
// smart HTTP: one ref advertisement and the stat of the files the last
// check read, nothing written.
func BenchmarkFetchUnchanged(b *testing.B) {
	w := gittest.NewRepo(b)
	bare := gittest.NewBare(b)
	w.Commit(b, map[string]string{"file.txt": "x\n"}, "first")
	w.Push(b, bare, "HEAD:refs/heads/main")
	gittest.GenerateHistory(b, bare, "main", 200, 10, 512)
	srv := gittest.StartHTTPServer(b, bare, "")
	r := &Repo{Dir: filepath.Join(b.TempDir(), "repo.git"), Remote: Remote{URL: srv.URL}, Branches: []string{"main", "testing/bench"}}
	ctx := context.Background()
	if _, err := r.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	// Polls of a copy written less than racyWindow ago check it again;
	// measure the steady state of a settled copy.
	time.Sleep(racyWindow + 100*time.Millisecond)
	srv.Reset()
	b.ReportAllocs()
	for b.Loop() {
		res, err := r.Fetch(ctx)
		if err != nil || res.Changed {
			b.Fatalf("Fetch = %+v, %v; want unchanged", res, err)
		}
	}
	b.ReportMetric(float64(srv.Count("POST")), "posts")
}
