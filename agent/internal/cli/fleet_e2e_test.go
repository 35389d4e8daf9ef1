package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/fleet"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// TestFleetAgainstTwentyAgents starts 20 real agent processes on loopback:
// ten follow a real repository and deploy it with real nix, five cannot
// reach their remote, five are stopped. The fleet table and JSON must show
// each host as it is.
func TestFleetAgainstTwentyAgents(t *testing.T) {
	nixtest.Require(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "avalanche-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/avalanche-agent").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	up := nixtest.NewRepo(t, "main")
	commit := up.WriteFlake(t, nixtest.FlakeOptions{Name: "fleet", Marker: "fleet"}, "fleet")

	var hosts []fleet.Host
	procs := map[string]*exec.Cmd{}
	for i := range 20 {
		name := fmt.Sprintf("h%02d", i)
		url := up.Bare
		if i >= 10 && i < 15 {
			url = "http://127.0.0.1:1/nowhere.git" // unreachable remote
		}
		addr := freeAddr(t)
		hosts = append(hosts, fleet.Host{Name: name, Address: "http://" + addr})
		procs[name] = startAgent(t, bin, filepath.Join(dir, name), name, url, addr)
	}
	for i := 15; i < 20; i++ {
		p := procs[fmt.Sprintf("h%02d", i)]
		p.Process.Signal(syscall.SIGTERM)
		p.Wait()
	}
	waitFor(t, 60*time.Second, func() bool {
		rows := fleet.Query(context.Background(), hosts[:10], fleet.Options{Timeout: time.Second})
		for _, r := range rows {
			if r.Commit != commit {
				return false
			}
		}
		return true
	})

	hostsFile := filepath.Join(dir, "hosts.json")
	b, _ := json.Marshal(hosts)
	os.WriteFile(hostsFile, b, 0o644)
	out, stderr, err := run(t, "fleet", "--hosts-file", hostsFile, "--repo", up.Work, "--timeout", "2s")
	if err != nil {
		t.Fatalf("fleet = %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 21 {
		t.Fatalf("fleet printed %d lines; want a header and 20 hosts:\n%s", len(lines), out)
	}
	for i, line := range lines[1:] {
		name := fmt.Sprintf("h%02d", i)
		switch {
		case !strings.HasPrefix(line, name):
			t.Errorf("line %d = %q; want host %s in inventory order", i+1, line, name)
		case i < 10 && !strings.Contains(line, commit[:12]):
			t.Errorf("deployed host line %q lacks commit %s", line, commit[:12])
		case i >= 10 && i < 15 && !strings.Contains(line, "failed"):
			t.Errorf("host without remote line %q does not say failed", line)
		case i >= 15 && !strings.Contains(line, "unreachable"):
			t.Errorf("stopped host line %q does not say unreachable", line)
		}
	}
	t.Logf("fleet table:\n%s", out)

	out, _, err = run(t, "fleet", "--hosts-file", hostsFile, "--repo", up.Work, "--timeout", "2s", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []fleet.Row
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("fleet --json: %v\n%s", err, out)
	}
	for i, r := range rows {
		if want := i < 15; r.Reachable != want {
			t.Errorf("rows[%d] (%s) reachable = %v; want %v", i, r.Host, r.Reachable, want)
		}
	}
}

func startAgent(t *testing.T, bin, dir, name, url, statusAddr string) *exec.Cmd {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	c := map[string]any{
		"version": 1, "hostname": name, "flakeOutput": "fleet", "pollInterval": "1h", "statusListen": statusAddr,
		"repository": map[string]any{"url": url, "fetchTimeout": "5s"},
		"stateDir":   filepath.Join(dir, "state"), "runtimeDir": filepath.Join(dir, "run"),
		"deploy": map[string]any{"profile": filepath.Join(dir, "profile", "system"), "currentSystem": filepath.Join(dir, "current"),
			"bootedSystem": filepath.Join(dir, "booted"), "systemdRun": false, "nixArgs": nixtest.Args()},
	}
	b, _ := json.Marshal(c)
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, b, 0o600)
	cmd := exec.Command(bin, "run", "--config", cfg)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.Env = append(os.Environ(), "JOURNAL_STREAM=", "NOTIFY_SOCKET=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, logs.String())
		}
	})
	return cmd
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
	}
}
