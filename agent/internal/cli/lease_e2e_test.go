package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/client"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/lease"
	"github.com/avalanche-fleet/avalanche/agent/internal/notify"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
	"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// agentConfigEnv makes the test binary run an agent from that config file
// instead of the tests, so a test can kill -9 a real agent process.
const agentConfigEnv = "AVALANCHE_TEST_AGENT_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(agentConfigEnv); path != "" {
		os.Exit(agentMain(path))
	}
	os.Exit(m.Run())
}

// agentMain runs an agent wired by NewDaemon, as `avalanche-agent run`
// wires it, until SIGTERM.
func agentMain(path string) int {
	c, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	d, err := NewDaemon(c, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	d.Notify = &notify.Notifier{Send: func(string) (bool, error) { return false, nil }}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		return 1
	}
	return 0
}

// leaseTTL is the test group's claims' time to live (the shortest the
// config allows).
const leaseTTL = 10 * time.Second

// leaseHostConfig writes the config of a host of group "servers" (budget
// 1, lease on anchor) and returns its path.
func leaseHostConfig(t *testing.T, dir, name, gitURL, forgeURL, anchor string) (string, *config.Config) {
	t.Helper()
	dir, c := reportingHostConfig(t, dir, name, gitURL, forgeURL, map[string]any{"group": "servers",
		"budgets": map[string]int{"servers": 1}, "lease": map[string]any{"anchor": anchor, "ttl": leaseTTL.String()}})
	b, _ := json.Marshal(c)
	path := writeFile(t, dir, "config.json", string(b))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// startAgentProcess runs the agent of config path in its own process and
// waits until its socket answers; kill -9 it with cmd.Process.Kill.
func startAgentProcess(t *testing.T, path string, cfg *config.Config) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(path), "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), agentConfigEnv+"="+path, nixtest.Env(t)[0])
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting agent process: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s's agent process log:\n%s", cfg.Hostname, b)
		}
	})
	c := &client.Client{Socket: cfg.SocketPath()}
	waitFor(t, 30*time.Second, func() bool { _, err := c.Status(context.Background()); return err == nil })
	return cmd
}

// claims are the statuses the forge received on host's lease context.
func claims(fake *forgetest.Server, host string) []forgetest.Received {
	var out []forgetest.Received
	for _, r := range fake.Received() {
		if r.Status.Context == lease.Context("servers", host) {
			out = append(out, r)
		}
	}
	return out
}

// TestLeaseHolderKilled: two agents of one group with a budget of 1. The
// holder is killed (SIGKILL of its agent process) in the middle of an
// activation; the other, waiting for the lease, takes it only once the
// dead holder's claim expired, and deploys. The killed holder, started
// again, renews the lease in its recovery, settles the cut-short
// deployment and releases the lease.
func TestLeaseHolderKilled(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("JOURNAL_STREAM", "")
	dir := t.TempDir()
	up := nixtest.NewRepo(t, "main")
	c0 := up.WriteFlake(t, nixtest.FlakeOptions{Name: "fleet", Marker: "zero"}, "first")
	git := gittest.StartHTTPServer(t, up.Bare, "git-token-value")
	fake := forgetest.Start(t, "fleet/avalanche", up.Bare, "forge-token-value")
	path, holderCfg := leaseHostConfig(t, dir, "holder", git.URL, fake.URL, c0)
	holder := startAgentProcess(t, path, holderCfg)
	holderClient := &client.Client{Socket: holderCfg.SocketPath()}
	deployed := func(c *client.Client, commit string) bool {
		s, err := c.Status(context.Background())
		return err == nil && s.Deployed != nil && s.Deployed.Commit == commit
	}
	waitFor(t, time.Minute, func() bool { return deployed(holderClient, c0) })

	// c1's activation hangs on the holder while the marker exists.
	activations, slow := filepath.Join(dir, "activations.log"), filepath.Join(dir, "slow")
	writeFile(t, dir, "slow", "")
	c1 := up.WriteFlake(t, nixtest.FlakeOptions{Name: "fleet", Marker: "one", Activate: `echo "begin $(date +%s.%N) $$" >> ` + activations +
		`; while [ -e ` + slow + ` ]; do sleep 0.2; done; echo "end $(date +%s.%N) $$" >> ` + activations}, "slow to activate")
	waitFor(t, time.Minute, func() bool { b, _ := os.ReadFile(activations); return strings.Count(string(b), "begin") == 1 })

	_, otherCfg := leaseHostConfig(t, dir, "other", git.URL, fake.URL, c0)
	other := &client.Client{Socket: otherCfg.SocketPath()}
	runOther(t, filepath.Join(dir, "other"))
	waitFor(t, time.Minute, func() bool {
		s, err := other.Status(context.Background())
		return err == nil && s.Lease != nil && !s.Lease.Held && len(s.Lease.Holders) == 1 && s.Lease.Holders[0].Host == "holder"
	})
	if out, _, err := run(t, "status", "--config", filepath.Join(dir, "other", "config.json")); err != nil ||
		!strings.Contains(out, "group servers (1 at once): waiting") || !strings.Contains(out, "holders holder (place") {
		t.Errorf("status of the waiting host = %v:\n%s\nwant a lease line: group servers, waiting, held by holder", err, out)
	}
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	held := claims(fake, "holder")
	last := held[len(held)-1]
	if last.Status.State != forge.Pending {
		t.Fatalf("the holder's last lease status = %+v; want its claim", last.Status)
	}
	os.Remove(slow) // the orphaned activation ends; the next is quick

	waitFor(t, time.Minute, func() bool { return deployed(other, c1) })
	begins := activationBegins(t, activations)
	if len(begins) != 2 {
		t.Fatalf("activations begun: %v; want the holder's and the other's", begins)
	}
	// The forge keeps whole seconds: a claim may look up to 1s older.
	expired := last.Time.Add(leaseTTL - time.Second)
	if begins[1].Before(expired) {
		t.Errorf("the other host began activating at %s, before the killed holder's claim (%s, ttl %v) expired",
			begins[1].Format("15:04:05.000"), last.Time.Format("15:04:05.000"), leaseTTL)
	}
	t.Logf("holder killed at %s, its last claim at %s; the other took the lease and began activating at %s (%.1fs after the kill)",
		killed.Format("15:04:05.000"), last.Time.Format("15:04:05.000"), begins[1].Format("15:04:05.000"), begins[1].Sub(killed).Seconds())

	// The holder comes back: its recovery renews the claim, settles the
	// activation that was cut short, and releases the lease.
	before := len(claims(fake, "holder"))
	startAgentProcess(t, path, holderCfg)
	waitFor(t, time.Minute, func() bool {
		after := claims(fake, "holder")[before:]
		return len(after) >= 2 && after[0].Status.State == forge.Pending && after[len(after)-1].Status.State == forge.Success
	})
	waitFor(t, time.Minute, func() bool { return deployed(holderClient, c1) })
	for _, r := range claims(fake, "holder")[before:] {
		t.Logf("holder after its restart: %s %s %q", r.Time.Format("15:04:05.000"), r.Status.State, r.Status.Description)
	}
}

// activationBegins are the begin times in the activations' log, in order.
func activationBegins(t *testing.T, log string) []time.Time {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for line := range strings.Lines(string(b)) {
		var what, pid string
		var at float64
		if _, err := fmt.Sscan(line, &what, &at, &pid); err != nil {
			t.Fatalf("activation log line %q: %v", line, err)
		}
		if what == "begin" {
			out = append(out, time.Unix(0, int64(at*1e9)))
		}
	}
	return out
}

// runOther runs the agent whose config.json is in dir in this process.
func runOther(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	runHostDaemon(t, dir, c)
}
