package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// samples returns n in the quick form, full in the full one.
func samples(n, full int) int {
	if fullRun() {
		return full
	}
	return n
}

// waitFetched polls the status every 2ms until the agent has fetched
// commit (the deployment starts right after) and returns when that was.
func (h *host) waitFetched(b *testing.B, commit string, timeout time.Duration) time.Time {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if s, err := h.status(); err == nil && s.Fetched.Commit == commit {
			return time.Now()
		}
	}
	b.Fatalf("the agent never fetched %s\n%s", commit, h.logTail())
	return time.Time{}
}

// reportDist reports the median, 90th percentile and maximum of ds in ms.
func reportDist(b *testing.B, name string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(ds[0]), name+"-min-ms")
	b.ReportMetric(ms(ds[len(ds)/2]), name+"-median-ms")
	b.ReportMetric(ms(ds[len(ds)*9/10]), name+"-p90-ms")
	b.ReportMetric(ms(ds[len(ds)-1]), name+"-max-ms")
}

// BenchmarkSyncToDeploy measures `avalanche-agent sync` (the CLI, a new
// process) to the moment the agent has fetched the new commit and starts
// deploying it.
func BenchmarkSyncToDeploy(b *testing.B) {
	for b.Loop() {
		h := newHost(b, hostOptions{})
		h.commit("first", "")
		h.start()
		h.settle(1, 2*time.Minute)
		var ds []time.Duration
		for i := range samples(5, 20) {
			h.opts.Marker = "v" + string(rune('a'+i))
			c := h.commit("next", "")
			passes := h.mustStatus().Passes
			t0 := time.Now()
			if out, err := exec.Command(agentBinary(b), "sync", "--config", h.cfgPath).CombinedOutput(); err != nil {
				b.Fatalf("avalanche-agent sync: %v\n%s", err, out)
			}
			ds = append(ds, h.waitFetched(b, c, 10*time.Second).Sub(t0))
			h.settle(passes+1, 2*time.Minute)
		}
		reportDist(b, "sync", ds)
		h.stop()
	}
}

// BenchmarkPushToDeploy measures a push (the moment it completed) to the
// moment the agent, polling every 5s, has fetched it and starts deploying.
func BenchmarkPushToDeploy(b *testing.B) {
	for b.Loop() {
		h := newHost(b, hostOptions{mutate: func(c map[string]any) { c["pollInterval"] = "5s" }})
		h.commit("first", "")
		h.start()
		h.settle(1, 2*time.Minute)
		var ds []time.Duration
		for i := range samples(6, 20) {
			h.opts.Marker = "p" + string(rune('a'+i))
			c := h.commit("next", "")
			t0 := time.Now()
			ds = append(ds, h.waitFetched(b, c, 30*time.Second).Sub(t0))
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
				if s := h.mustStatus(); s.Deployed != nil && s.Deployed.Commit == c && s.State == "idle" {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%s never deployed\n%s", c, h.logTail())
				}
			}
		}
		reportDist(b, "push", ds)
		h.stop()
	}
}

// BenchmarkNoopCommit compares a commit that leaves the system unchanged
// (only kubernetes/ changes) with one that changes it: passes, builds and
// time of `sync --wait`.
func BenchmarkNoopCommit(b *testing.B) {
	for b.Loop() {
		h := newHost(b, hostOptions{})
		h.commit("first", "")
		h.start()
		h.settle(1, 2*time.Minute)
		measure := func(name string, change func()) {
			change()
			c := h.commit(name, "")
			builds, acts := h.countInLog("INF built "), len(h.activations())
			t0 := time.Now()
			r := h.sync()
			d := time.Since(t0)
			if !r.OK {
				b.Fatalf("%s: sync = %+v", name, r)
			}
			if s := h.mustStatus(); s.Fetched.Commit != c {
				b.Fatalf("%s: fetched %s; want %s", name, s.Fetched.Commit, c)
			}
			b.ReportMetric(float64(h.countInLog("INF built ")-builds), name+"-builds")
			b.ReportMetric(float64(len(h.activations())-acts), name+"-activations")
			b.ReportMetric(float64(d.Milliseconds()), name+"-ms")
		}
		measure("noop", func() { h.up.WriteFile(b, "kubernetes/app.yaml", "replicas: 3\n") })
		measure("real", func() { h.opts.Marker = "changed" })
		h.stop()
	}
}

// BenchmarkLargeRepo compares the peak RSS and time of a first clone and
// of an incremental fetch of a generated large repository: the agent's
// fetch (gitsync in a child process, peak RSS from rusage) and `git fetch`
// (/usr/bin/time -v). 2,000 commits (about 20 MB) here, 20,000 (about
// 200 MB) with AVALANCHE_BENCH_FULL=1.
func BenchmarkLargeRepo(b *testing.B) {
	commits := samples(2000, 20000)
	w := gittest.NewRepo(b)
	bare := gittest.NewBare(b)
	w.Commit(b, map[string]string{"file.txt": "x\n"}, "first")
	w.Push(b, bare, "HEAD:refs/heads/main")
	gen := time.Now()
	gittest.GenerateHistory(b, bare, "main", commits, 1, 13000)
	b.Logf("generated %d commits in %v; bare repository %.0f MiB", commits, time.Since(gen), float64(duSize(bare))/mb)
	srv := gittest.StartHTTPServer(b, bare, "")
	for b.Loop() {
		goDir := filepath.Join(b.TempDir(), "repo.git")
		cliDir := filepath.Join(b.TempDir(), "cli.git")
		if out, err := exec.Command("git", "init", "--quiet", "--bare", cliDir).CombinedOutput(); err != nil {
			b.Fatalf("git init: %v\n%s", err, out)
		}
		report := func(step string, g, c fetchResult) {
			b.ReportMetric(float64(g.MaxRSS)/1024, step+"-gitsync-peakRSS-MiB")
			b.ReportMetric(float64(c.MaxRSS)/1024, step+"-git-peakRSS-MiB")
			b.ReportMetric(float64(g.MaxRSS)/float64(c.MaxRSS), step+"-RSS-ratio")
			b.ReportMetric(g.Wall.Seconds(), step+"-gitsync-s")
			b.ReportMetric(c.Wall.Seconds(), step+"-git-s")
		}
		report("clone", goFetch(b, goDir, srv.URL, 1), gitFetch(b, cliDir, srv.URL))
		gittest.GenerateHistory(b, bare, "main", commits/100, 1, 13000)
		g := goFetch(b, goDir, srv.URL, 1)
		if !g.Changed {
			b.Fatal("the incremental fetch fetched nothing")
		}
		report("incremental", g, gitFetch(b, cliDir, srv.URL))
		b.ReportMetric(float64(duSize(goDir))/mb, "gitsync-repo-MiB")
		b.ReportMetric(float64(duSize(cliDir))/mb, "git-repo-MiB")
	}
}

func duSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
