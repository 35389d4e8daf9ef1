package bench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// cominEnv names a comin binary to run side by side with the agent. The
// suite never builds comin; without it the agent is measured alone.
const cominEnv = "AVALANCHE_BENCH_COMIN"

// procSample is what the kernel counts for a running process.
type procSample struct {
	cpu           time.Duration
	reads, writes int64
	threads       float64
	rss, anon     float64 // KiB
}

func sampleProc(b *testing.B, pid int) procSample {
	// Threads: has the same "Name: value" shape as the kB fields.
	s := procSample{cpu: procCPU(b, pid), threads: procKiB(b, pid, "Threads"),
		rss: procKiB(b, pid, "VmRSS"), anon: procKiB(b, pid, "RssAnon")}
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(io)) {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			s.reads, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			s.writes, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return s
}

// reportIdle writes the per-poll figures of one process between two samples.
func reportIdle(b *testing.B, name string, s0, s1 procSample, polls int) {
	if polls == 0 {
		b.Fatalf("%s did not poll", name)
	}
	n := float64(polls)
	b.ReportMetric(float64(polls), name+"-polls")
	b.ReportMetric(float64((s1.cpu-s0.cpu).Microseconds())/n, name+"-CPU-µs/poll")
	b.ReportMetric(float64(s1.reads-s0.reads)/n, name+"-reads/poll")
	b.ReportMetric(float64(s1.writes-s0.writes)/n, name+"-writes/poll")
	b.ReportMetric(s1.threads, name+"-threads")
	b.ReportMetric(s1.rss/1024, name+"-RSS-MiB")
	b.ReportMetric(s1.anon/1024, name+"-anonRSS-MiB")
	b.ReportMetric(s1.anon-s0.anon, name+"-anonRSS-drift-KiB")
}

// BenchmarkIdleSideBySide runs the agent (after one deployment, metrics
// served) polling an unchanged repository every 2 s for 2 minutes (5 with
// AVALANCHE_BENCH_FULL=1) and reports per poll its CPU time and read and
// write system calls (/proc/<pid>/io), with its threads and memory at the
// end. With AVALANCHE_BENCH_COMIN set, comin polls the same repository
// (through its own server, period 2 s, builds and deployments left to
// manual confirmation) and is sampled at the same instants.
func BenchmarkIdleSideBySide(b *testing.B) {
	dur := 2 * time.Minute
	if fullRun() {
		dur = 5 * time.Minute
	}
	comin := os.Getenv(cominEnv)
	if comin == "" {
		b.Logf("%s not set: measuring the agent alone", cominEnv)
	}
	for b.Loop() {
		h := newHost(b, hostOptions{mutate: func(c map[string]any) {
			c["pollInterval"] = "2s"
			c["metrics"] = map[string]any{"listen": freeAddr(b)}
		}})
		h.commit("first", "")
		h.start()
		h.settle(1, 2*time.Minute)
		var ref *exec.Cmd
		var refSrv *gittest.HTTPServer
		if comin != "" {
			refSrv = gittest.StartHTTPServer(b, h.up.Bare, "")
			ref = startComin(b, comin, refSrv.URL)
		}
		time.Sleep(20 * time.Second) // past the first fetch of both, and comin's evaluation
		h.server.Reset()
		a0 := sampleProc(b, h.proc.Process.Pid)
		var c0 procSample
		if ref != nil {
			refSrv.Reset()
			c0 = sampleProc(b, ref.Process.Pid)
		}
		time.Sleep(dur)
		reportIdle(b, "agent", a0, sampleProc(b, h.proc.Process.Pid), h.server.Count("GET"))
		if ref != nil {
			c1 := sampleProc(b, ref.Process.Pid)
			reportIdle(b, "comin", c0, c1, refSrv.Count("GET"))
		}
		h.stop()
	}
}

// startComin runs comin against url with a config of its own in a
// temporary state directory; it ends with the benchmark.
func startComin(b *testing.B, bin, url string) *exec.Cmd {
	dir := b.TempDir()
	api, exporter := freeAddr(b), freeAddr(b)
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	cfg := fmt.Sprintf(`hostname: %s
state_dir: %s
repository_type: flake
remotes:
  - name: origin
    url: %s
    poller:
      period: 2
branches:
  main:
    name: main
  testing:
    name: testing/%s
api_server: {listen_address: 127.0.0.1, port: %s}
exporter: {listen_address: 127.0.0.1, port: %s}
build_confirmer: {mode: manual}
deploy_confirmer: {mode: manual}
retention: {deployment_boot_entry_capacity: 10, deployment_successful_capacity: 10, deployment_any_capacity: 10}
`, hostName, filepath.Join(dir, "state"), url, hostName, port(api), port(exporter))
	path := filepath.Join(dir, "comin.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "comin.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting comin: %v", err)
	}
	b.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		log.Close()
	})
	return cmd
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
