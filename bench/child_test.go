package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
)

// Environment of the child process that runs gitsync fetches for a
// benchmark, so their CPU time and peak RSS are the child's alone.
const (
	childFetchEnv  = "AVALANCHE_BENCH_CHILD_FETCH" // the repository directory
	childURLEnv    = "AVALANCHE_BENCH_CHILD_URL"
	childRepeatEnv = "AVALANCHE_BENCH_CHILD_REPEAT"
	// childContentsEnv picks the copy's gitsync.Contents: "commits" (a
	// builder-mode host that waits for releases) or "tip-trees"; unset,
	// everything.
	childContentsEnv = "AVALANCHE_BENCH_CHILD_CONTENTS"
)

// childReport is what the child prints: CPU time of its fetches alone.
type childReport struct {
	CPU     time.Duration `json:"cpu"`
	Wall    time.Duration `json:"wall"`
	Changed bool          `json:"changed"`
	// HWM is the peak RSS of this process's own memory (KiB). rusage's
	// Maxrss would also count the parent's memory the child shared until
	// exec (Go forks with CLONE_VM).
	HWM int64 `json:"hwm"`
	// Idle is the RSS (KiB) before the first fetch; Err is the last
	// fetch's error, when it failed.
	Idle       int64  `json:"idle"`
	Err        string `json:"err,omitempty"`
	Unfiltered bool   `json:"unfiltered,omitempty"`
}

// childFetch fetches main and testing/benchhost like the agent, repeat
// times, and prints a childReport.
func childFetch(dir string) int {
	n, _ := strconv.Atoi(os.Getenv(childRepeatEnv))
	r := &gitsync.Repo{Dir: dir, Remote: gitsync.Remote{URL: os.Getenv(childURLEnv)},
		Branches: []string{"main", "testing/" + hostName}, Timeout: 10 * time.Minute}
	switch os.Getenv(childContentsEnv) {
	case "commits":
		r.Contents = gitsync.CommitsOnly
	case "tip-trees":
		r.Contents = gitsync.TipTrees
	}
	var rep childReport
	rep.Idle = statusKiB("VmRSS")
	before, start := cpuTime(syscall.RUSAGE_SELF), time.Now()
	for range max(n, 1) {
		res, err := r.Fetch(context.Background())
		if err != nil {
			rep.Err = err.Error()
			break
		}
		rep.Changed = rep.Changed || res.Changed
		rep.Unfiltered = rep.Unfiltered || res.Unfiltered
	}
	rep.CPU, rep.Wall = cpuTime(syscall.RUSAGE_SELF)-before, time.Since(start)
	rep.HWM = statusKiB("VmHWM")
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// statusKiB reads a kB field of /proc/self/status.
func statusKiB(field string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fetchResult is one measured fetch (or series of fetches).
type fetchResult struct {
	CPU     time.Duration // per fetch
	Wall    time.Duration // per fetch
	MaxRSS  int64         // KiB, the process and its children
	Changed bool
	Idle    int64 // KiB before the first fetch (gitsync only)
	Err     string
}

// goFetch runs repeat gitsync fetches of url into dir in a child process.
func goFetch(tb testing.TB, dir, url string, repeat int, env ...string) fetchResult {
	tb.Helper()
	r := goFetchMayFail(tb, dir, url, repeat, env...)
	if r.Err != "" {
		tb.Fatalf("child fetch: %s", r.Err)
	}
	return r
}

// goFetchMayFail is goFetch returning the fetch's error in Err.
func goFetchMayFail(tb testing.TB, dir, url string, repeat int, env ...string) fetchResult {
	tb.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childFetchEnv+"="+dir, childURLEnv+"="+url, childRepeatEnv+"="+strconv.Itoa(repeat))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("child fetch: %v: %s", err, stderrOf(err))
	}
	var rep childReport
	if err := json.Unmarshal(out, &rep); err != nil {
		tb.Fatalf("child fetch printed %q: %v", out, err)
	}
	return fetchResult{CPU: rep.CPU / time.Duration(repeat), Wall: rep.Wall / time.Duration(repeat), MaxRSS: rep.HWM,
		Changed: rep.Changed, Idle: rep.Idle, Err: rep.Err}
}

// gitFetch runs `git fetch` of main into the bare repository dir under
// /usr/bin/time -v and returns its CPU time, wall time and peak RSS.
func gitFetch(tb testing.TB, dir, url string) fetchResult {
	tb.Helper()
	return timed(tb, dir, "-v", "git", "fetch", "--quiet", url, "+refs/heads/main:refs/heads/main")
}

// timed runs /usr/bin/time with args in dir and returns the command's CPU
// time, wall time and peak RSS.
func timed(tb testing.TB, dir string, args ...string) fetchResult {
	tb.Helper()
	start := time.Now()
	cmd := exec.Command("/usr/bin/time", args...)
	cmd.Dir, cmd.Env = dir, gitEnv(tb)
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args[1:], " "), err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r := fetchResult{CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), Wall: wall}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Maximum resident set size (kbytes): "); ok {
			r.MaxRSS, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return r
}

func gitEnv(tb testing.TB) []string {
	return append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+tb.TempDir(), "GIT_TERMINAL_PROMPT=0")
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
