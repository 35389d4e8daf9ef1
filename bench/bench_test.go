package bench

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

const mb = 1 << 20

// BenchmarkBinarySize builds the daemon as released (CGO_ENABLED=0,
// -trimpath, -ldflags '-s -w') for amd64 and arm64 and reports its size,
// then logs which modules take the most room (symbol sizes of an
// unstripped amd64 build).
func BenchmarkBinarySize(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		for _, arch := range []string{"amd64", "arm64"} {
			for _, prog := range []string{"avalanche-agent", "avalanche-decrypt"} {
				out := filepath.Join(dir, prog+"-"+arch)
				goBuild(b, arch, out, "-trimpath", "-ldflags=-s -w", "../agent/cmd/"+prog)
				fi, _ := os.Stat(out)
				b.ReportMetric(float64(fi.Size())/mb, prog+"-"+arch+"-MiB")
			}
		}
	}
	full := filepath.Join(dir, "avalanche-agent-full")
	goBuild(b, "amd64", full, "-trimpath", "../agent/cmd/avalanche-agent")
	b.Logf("largest modules in the agent (symbol bytes, amd64):\n%s", topModules(b, full, 12))
}

func goBuild(b *testing.B, arch, out string, args ...string) {
	b.Helper()
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", arch, err, o)
	}
}

// topModules sums the text and read-only data symbols of `go tool nm
// -size` by module (or standard package).
func topModules(b *testing.B, bin string, n int) string {
	out, err := exec.Command("go", "tool", "nm", "-size", bin).Output()
	if err != nil {
		b.Fatalf("go tool nm: %v", err)
	}
	sizes := map[string]int64{}
	var total int64
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.Contains("TtRr", f[2]) {
			continue // data and bss (e.g. a 32 MiB zeroed DRBG buffer) take no file space
		}
		size, _ := strconv.ParseInt(f[1], 10, 64)
		sizes[module(f[3])] += size
		total += size
	}
	var mods []string
	for m := range sizes {
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return sizes[mods[i]] > sizes[mods[j]] })
	var sb strings.Builder
	for _, m := range mods[:min(n, len(mods))] {
		fmt.Fprintf(&sb, "  %6.2f MiB %5.1f%%  %s\n", float64(sizes[m])/mb, 100*float64(sizes[m])/float64(total), m)
	}
	return sb.String()
}

// module maps a symbol to the module it comes from: the first path
// elements of a dotted import path, or the standard library package.
func module(sym string) string {
	sym = strings.TrimPrefix(sym, "type:")
	sym = strings.TrimPrefix(sym, "go:itab.*")
	sym = strings.TrimPrefix(sym, "*")
	if i := strings.IndexAny(sym, "(["); i > 0 {
		sym = sym[:i]
	}
	parts := strings.Split(sym, "/")
	if !strings.Contains(parts[0], ".") {
		return "std " + strings.SplitN(parts[0], ".", 2)[0]
	}
	k := 3
	if parts[0] == "tailscale.com" || parts[0] == "golang.org" && len(parts) > 2 {
		k = 2
	}
	if parts[0] == "golang.org" {
		k = 3
	}
	if len(parts) < k {
		k = len(parts)
	}
	last := strings.SplitN(parts[k-1], ".", 2)[0]
	return strings.Join(append(parts[:k-1], last), "/")
}

// BenchmarkIdleRSS runs the agent polling an unchanged repository every 5s
// for 1 minute (10 with AVALANCHE_BENCH_FULL=1) and reports its resident
// memory at the end, its peak, and its CPU time per minute.
func BenchmarkIdleRSS(b *testing.B) {
	dur := time.Minute
	if fullRun() {
		dur = 10 * time.Minute
	}
	for b.Loop() {
		h := newHost(b, hostOptions{mutate: func(c map[string]any) { c["pollInterval"] = "5s" }})
		h.commit("first", "")
		h.start()
		h.settle(1, 2*time.Minute)
		h.server.Reset()
		start, cpu0 := time.Now(), procCPU(b, h.proc.Process.Pid)
		time.Sleep(dur)
		pid := h.proc.Process.Pid
		b.ReportMetric(procKiB(b, pid, "VmRSS")/1024, "RSS-MiB")
		// Anonymous memory is what the agent really holds; the file part is
		// the mapped binary, which the kernel can drop and re-read.
		b.ReportMetric(procKiB(b, pid, "RssAnon")/1024, "anonRSS-MiB")
		b.ReportMetric(procKiB(b, pid, "RssFile")/1024, "fileRSS-MiB")
		b.ReportMetric(procKiB(b, pid, "VmHWM")/1024, "peakRSS-MiB")
		b.ReportMetric((procCPU(b, pid)-cpu0).Seconds()/time.Since(start).Minutes(), "CPU-s/min")
		b.ReportMetric(float64(h.server.Count("GET")), "polls")
		b.ReportMetric(float64(h.server.Count("POST")), "packPOSTs")
		h.stop()
	}
}

// procKiB reads a "kB" field of /proc/pid/status.
func procKiB(b *testing.B, pid int, field string) float64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// procCPU is the user+system time of pid so far.
func procCPU(b *testing.B, pid int) time.Duration {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(s)[strings.LastIndexByte(string(s), ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// BenchmarkUnchangedPoll compares one poll of an unchanged remote by the
// agent's fetch (gitsync, in a child process, 50 polls averaged) with
// `git fetch` of the same server: CPU time, requests and response bytes,
// and bytes written into the repository.
func BenchmarkUnchangedPoll(b *testing.B) {
	srv := historyServer(b, 500)
	goDir := filepath.Join(b.TempDir(), "repo.git")
	goFetch(b, goDir, srv.URL, 1)
	time.Sleep(2100 * time.Millisecond) // past gitsync's racy window: a settled copy, as on a host
	cliDir := filepath.Join(b.TempDir(), "cli.git")
	if out, err := exec.Command("git", "init", "--quiet", "--bare", cliDir).CombinedOutput(); err != nil {
		b.Fatalf("git init: %v\n%s", err, out)
	}
	gitFetch(b, cliDir, srv.URL)
	const polls = 50
	for b.Loop() {
		srv.Reset()
		since := time.Now()
		g := goFetch(b, goDir, srv.URL, polls)
		if g.Changed {
			b.Fatal("gitsync fetched something from an unchanged remote")
		}
		reqs, bytes := served(srv)
		b.ReportMetric(float64(g.CPU.Microseconds()), "gitsync-CPU-µs/poll")
		b.ReportMetric(float64(reqs)/polls, "gitsync-requests/poll")
		b.ReportMetric(float64(bytes)/polls, "gitsync-respB/poll")
		b.ReportMetric(float64(writtenSince(goDir, since)), "gitsync-diskB/50polls")

		srv.Reset()
		since = time.Now()
		var cpu time.Duration
		for range polls {
			cpu += gitFetch(b, cliDir, srv.URL).CPU
		}
		reqs, bytes = served(srv)
		b.ReportMetric(float64((cpu / polls).Microseconds()), "git-CPU-µs/poll")
		b.ReportMetric(float64(reqs)/polls, "git-requests/poll")
		b.ReportMetric(float64(bytes)/polls, "git-respB/poll")
		b.ReportMetric(float64(writtenSince(cliDir, since)), "git-diskB/50polls")
		b.ReportMetric(float64(g.CPU)/float64(cpu/polls), "CPU-ratio")
	}
}

// historyServer serves over smart HTTP a bare repository whose main has a
// first commit and then commits more (10 files of 512 bytes changed in each).
func historyServer(b *testing.B, commits int) *gittest.HTTPServer {
	w := gittest.NewRepo(b)
	bare := gittest.NewBare(b)
	w.Commit(b, map[string]string{"file.txt": "x\n"}, "first")
	w.Push(b, bare, "HEAD:refs/heads/main")
	gittest.GenerateHistory(b, bare, "main", commits, 10, 512)
	return gittest.StartHTTPServer(b, bare, "")
}

func served(srv *gittest.HTTPServer) (n int, bytes int64) {
	for _, r := range srv.Requests() {
		n++
		bytes += r.Bytes
	}
	return n, bytes
}

// writtenSince sums the sizes of the files under dir modified after t:
// what a poll wrote to the disk.
func writtenSince(dir string, t time.Time) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil && !fi.ModTime().Before(t) {
			n += fi.Size()
		}
		return nil
	})
	return n
}
