package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
)

// Environment of the child processes that BenchmarkPollFootprint runs: one
// polls with gitsync, the other with `git ls-remote`, each measuring
// itself (and its reaped children) through /proc/self.
const (
	childPollsEnv  = "AVALANCHE_BENCH_CHILD_POLLS" // gitsync or ls-remote
	childPollsN    = "AVALANCHE_BENCH_CHILD_POLLS_N"
	childPollsDir  = "AVALANCHE_BENCH_CHILD_POLLS_DIR"
	childPollsURL  = "AVALANCHE_BENCH_CHILD_POLLS_URL"
	pollsFootprint = 10000 // polls in the gitsync child
	pollsLsRemote  = 300   // polls (processes) in the ls-remote child
)

// pollReport is what a polling child prints. CPU, Reads and Writes cover
// the measured polls, the child's own and its reaped children's. Mem holds
// a sample after every tenth of the polls.
type pollReport struct {
	Polls         int
	CPU           time.Duration
	Reads, Writes int64
	Mem           []memSample
	Threads       int64
}

// memSample is taken after a garbage collection that also returns the
// free heap to the OS (the scavenger otherwise does so at its own pace,
// and VmRSS swings by megabytes with it): VmRSS and RssAnon in KiB, the
// live heap and the heap obtained from the OS in bytes.
type memSample struct {
	RSS, Anon     int64
	Heap, HeapSys uint64
}

func sampleMemory() memSample {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{RSS: statusKiB("VmRSS"), Anon: statusKiB("RssAnon"), Heap: ms.HeapAlloc, HeapSys: ms.HeapSys}
}

// drift is the mean of the last three samples of v minus the mean of the
// first three, and the spread of all of them, in KiB per unit of v.
func drift(samples []memSample, v func(memSample) float64, unit float64) (d, spread float64) {
	if len(samples) < 6 {
		return 0, 0
	}
	mean := func(s []memSample) float64 {
		var sum float64
		for _, m := range s {
			sum += v(m)
		}
		return sum / float64(len(s)) * unit
	}
	lo, hi := v(samples[0]), v(samples[0])
	for _, m := range samples {
		lo, hi = min(lo, v(m)), max(hi, v(m))
	}
	return mean(samples[len(samples)-3:]) - mean(samples[:3]), (hi - lo) * unit
}

// selfSample reads this process's counters: CPU of itself and its reaped
// children, and the read and write system calls of both (/proc/self/io
// adds a reaped child's counts to its parent's).
func selfSample() (cpu time.Duration, reads, writes int64) {
	cpu = cpuTime(syscall.RUSAGE_SELF) + cpuTime(syscall.RUSAGE_CHILDREN)
	b, _ := os.ReadFile("/proc/self/io")
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "syscr:" {
			reads, _ = strconv.ParseInt(f[1], 10, 64)
		}
		if len(f) == 2 && f[0] == "syscw:" {
			writes, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return cpu, reads, writes
}

// childPolls is the body of a polling child; it prints a pollReport.
func childPolls(mode string) int {
	n, _ := strconv.Atoi(os.Getenv(childPollsN))
	url, dir := os.Getenv(childPollsURL), os.Getenv(childPollsDir)
	poll := func() error {
		out, err := exec.Command("git", "ls-remote", "--heads", url, "main", "testing/"+hostName).Output()
		if err == nil && !strings.Contains(string(out), "refs/heads/main") {
			err = fmt.Errorf("git ls-remote printed %q", out)
		}
		return err
	}
	if mode == "gitsync" {
		r := &gitsync.Repo{Dir: dir, Remote: gitsync.Remote{URL: url}, Branches: []string{"main", "testing/" + hostName}}
		poll = func() error {
			res, err := r.Fetch(context.Background())
			if err == nil && res.Changed {
				err = fmt.Errorf("fetch of an unchanged remote changed the copy: %+v", res)
			}
			return err
		}
	}
	var rep pollReport
	every := max(n/10, 1)
	cpu0, r0, w0 := selfSample()
	for i := range n {
		if err := poll(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if (i+1)%every == 0 {
			rep.Mem = append(rep.Mem, sampleMemory())
		}
	}
	cpu1, r1, w1 := selfSample()
	rep.Polls, rep.CPU, rep.Reads, rep.Writes = n, cpu1-cpu0, r1-r0, w1-w0
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			rep.Threads, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// runPolls runs a polling child and returns its report.
func runPolls(tb testing.TB, mode, dir, url string, n int) pollReport {
	tb.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(gitEnv(tb), childPollsEnv+"="+mode, childPollsN+"="+strconv.Itoa(n), childPollsDir+"="+dir, childPollsURL+"="+url)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s polls: %v: %s", mode, err, stderrOf(err))
	}
	var rep pollReport
	if err := json.Unmarshal(out, &rep); err != nil {
		tb.Fatalf("%s polls printed %q: %v", mode, out, err)
	}
	return rep
}

// BenchmarkPollFootprint measures one unchanged poll (main and the host's
// testing branch, over smart HTTP, 500-commit repository) by gitsync in a
// child process that polls 10,000 times back to back, against `git
// ls-remote` of the same refs, the least a poll can ask (300 runs): CPU
// per poll, read and write system calls per poll, and how the gitsync
// child's memory drifts from polls 1,000-3,000 to polls 8,000-10,000
// (means of three samples each; spread: highest minus lowest sample).
func BenchmarkPollFootprint(b *testing.B) {
	srv := historyServer(b, 500)
	dir := filepath.Join(b.TempDir(), "repo.git")
	goFetch(b, dir, srv.URL, 1)
	// Let the copy age past gitsync's racy window (2 s): a copy written
	// just now is checked again on every poll until then.
	time.Sleep(2100 * time.Millisecond)
	for b.Loop() {
		srv.Reset()
		g := runPolls(b, "gitsync", dir, srv.URL, pollsFootprint)
		if got := srv.Count("GET"); got != g.Polls || srv.Count("POST") != 0 {
			b.Fatalf("gitsync made %d ref advertisements and %d pack requests in %d polls", got, srv.Count("POST"), g.Polls)
		}
		ls := runPolls(b, "ls-remote", dir, srv.URL, pollsLsRemote)
		perPoll := func(r pollReport, v float64) float64 { return v / float64(r.Polls) }
		b.ReportMetric(perPoll(g, float64(g.CPU.Microseconds())), "gitsync-CPU-µs/poll")
		b.ReportMetric(perPoll(g, float64(g.Reads)), "gitsync-reads/poll")
		b.ReportMetric(perPoll(g, float64(g.Writes)), "gitsync-writes/poll")
		reportDrift(b, g.Mem)
		b.ReportMetric(float64(g.Threads), "gitsync-threads")
		b.ReportMetric(perPoll(ls, float64(ls.CPU.Microseconds())), "ls-remote-CPU-µs/poll")
		b.ReportMetric(perPoll(ls, float64(ls.Reads)), "ls-remote-reads/poll")
		b.ReportMetric(perPoll(ls, float64(ls.Writes)), "ls-remote-writes/poll")
		b.ReportMetric(perPoll(g, float64(g.CPU))/perPoll(ls, float64(ls.CPU)), "CPU-ratio")
	}
}

// reportDrift reports how the memory samples of the gitsync child drift.
func reportDrift(b *testing.B, mem []memSample) {
	for _, m := range []struct {
		name string
		v    func(memSample) float64
		unit float64
	}{
		{"RSS", func(m memSample) float64 { return float64(m.RSS) }, 1},
		{"anonRSS", func(m memSample) float64 { return float64(m.Anon) }, 1},
		{"heap", func(m memSample) float64 { return float64(m.Heap) }, 1.0 / 1024},
		{"heapSys", func(m memSample) float64 { return float64(m.HeapSys) }, 1.0 / 1024},
	} {
		d, spread := drift(mem, m.v, m.unit)
		b.ReportMetric(d, "gitsync-"+m.name+"-drift-KiB")
		b.ReportMetric(spread, "gitsync-"+m.name+"-spread-KiB")
	}
	b.ReportMetric(float64(mem[len(mem)-1].Anon), "gitsync-anonRSS-KiB")
}
