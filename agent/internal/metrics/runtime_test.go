package metrics

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// value returns the value of a label-less family in a scrape of m.
func value(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	f := scrape(t, m)[name]
	if f == nil || len(f.GetMetric()) != 1 {
		t.Fatalf("exposition lacks %s", name)
	}
	s := f.GetMetric()[0]
	switch {
	case s.Gauge != nil:
		return s.GetGauge().GetValue()
	case s.Counter != nil:
		return s.GetCounter().GetValue()
	}
	t.Fatalf("%s is neither gauge nor counter", name)
	return 0
}

func TestLabelValuesEscaped(t *testing.T) {
	version := "v1 \"quoted\" back\\slash\nnext line"
	got := series(scrape(t, New(version)))
	for key := range got {
		if strings.HasPrefix(key, "avalanche_build_info{") && strings.Contains(key, "version="+version+"}") {
			return
		}
	}
	t.Errorf("no avalanche_build_info series with version %q in %v", version, got)
}

// TestProcessFigures compares the process_* and go_* values with what the
// kernel and the runtime report through other interfaces.
func TestProcessFigures(t *testing.T) {
	m := New("dev")
	fds := value(t, m, "process_open_fds")
	for i := range 10 {
		f, err := os.Create(filepath.Join(t.TempDir(), strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	if got := value(t, m, "process_open_fds"); got != fds+10 {
		t.Errorf("process_open_fds = %v after opening 10 files; want %v", got, fds+10)
	}

	goroutines := value(t, m, "go_goroutines")
	stop := make(chan struct{})
	for range 20 {
		go func() { <-stop }()
	}
	got := value(t, m, "go_goroutines")
	close(stop)
	if got < goroutines+20 {
		t.Errorf("go_goroutines = %v with 20 more goroutines; want at least %v", got, goroutines+20)
	}

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got := value(t, m, "process_max_fds"); got != float64(lim.Cur) {
		t.Errorf("process_max_fds = %v; want RLIMIT_NOFILE %d", got, lim.Cur)
	}

	var ru syscall.Rusage
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
		// burn some CPU
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	want := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	if got := value(t, m, "process_cpu_seconds_total"); math.Abs(got-want) > 0.1 {
		t.Errorf("process_cpu_seconds_total = %v; getrusage says %v", got, want)
	}

	start := value(t, m, "process_start_time_seconds")
	if now := float64(time.Now().Unix()); start > now+1 || start < now-3600 {
		t.Errorf("process_start_time_seconds = %v; want within the last hour before %v", start, now)
	}
	rss := value(t, m, "process_resident_memory_bytes")
	if want := vmRSS(t); rss < want/2 || rss > want*2 {
		t.Errorf("process_resident_memory_bytes = %v; /proc/self/status says VmRSS %v", rss, want)
	}
}

// vmRSS reads VmRSS from /proc/self/status, in bytes.
func vmRSS(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
