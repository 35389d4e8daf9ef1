package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
	"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest"
)

// BenchmarkIdleRolloutLease is row 11's measurement for a host with a
// rollout gate (wave 1) and a disruption budget (group, lease on the first
// commit), reporting to a fake Forgejo: after one deployment through the
// gate and the lease, the agent polls an unchanged repository every 2 s
// for a minute (2 with AVALANCHE_BENCH_FULL=1); per poll, its read and
// write system calls and CPU (/proc/<pid>/io, /proc/<pid>/stat) and the
// requests it made to the forge. It also reports what the deployment
// cost the forge: the lease's statuses on the anchor and all requests.
func BenchmarkIdleRolloutLease(b *testing.B) {
	b.Run("plain", func(b *testing.B) { idleRollout(b, false) })
	b.Run("gate+lease", func(b *testing.B) { idleRollout(b, true) })
}

// idleRollout measures one host's idle polls, with the gate and the lease
// or without (the same agent, the same run shape, for comparison).
func idleRollout(b *testing.B, rollout bool) {
	dur := time.Minute
	if fullRun() {
		dur = 2 * time.Minute
	}
	for b.Loop() {
		h := newHost(b, hostOptions{mutate: func(c map[string]any) {
			c["pollInterval"] = "2s"
			c["metrics"] = map[string]any{"listen": freeAddr(b)}
		}})
		commit := h.commit("first", "")
		fake := forgetest.Start(b, "fleet/avalanche", h.up.Bare, "forge-token-value")
		ep, _ := forge.ParseURL(fake.URL)
		cl := &forge.Client{Endpoint: ep, Repository: "fleet/avalanche", Token: "forge-token-value"}
		// The canary of wave 0 ran the commit: the gate opens.
		if err := cl.CreateStatus(context.Background(), commit, forge.Status{State: forge.Success, Context: "avalanche/canary", Description: "deployed"}); err != nil {
			b.Fatal(err)
		}
		token := filepath.Join(h.dir, "forge-token")
		if err := os.WriteFile(token, []byte("forge-token-value\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		if rollout {
			h.cfg["report"] = map[string]any{"forge": map[string]any{"url": fake.URL, "tokenFile": token, "repository": "fleet/avalanche"}}
			h.cfg["rollout"] = map[string]any{"wave": 1, "waves": map[string]int{"canary": 0, hostName: 1}, "soak": "0s",
				"group": "servers", "budgets": map[string]int{"servers": 1}, "lease": map[string]any{"anchor": commit, "ttl": "1m"}}
		}
		h.writeConfig()
		start := fake.Attempts()
		h.start()
		if s := h.settle(1, 2*time.Minute); s.Deployed == nil || s.Deployed.Commit != commit {
			b.Fatalf("the first deployment through the gate and the lease: %+v", s)
		}
		time.Sleep(10 * time.Second) // the forge reporter's last status is sent
		leaseStatuses := 0
		for _, r := range fake.Received() {
			if strings.HasPrefix(r.Status.Context, "avalanche/lease/") {
				leaseStatuses++
			}
		}
		b.ReportMetric(float64(leaseStatuses), "deploy-lease-statuses")
		b.ReportMetric(float64(fake.Attempts()-start), "deploy-forge-requests")
		h.server.Reset()
		pid := h.proc.Process.Pid
		f0, a0, d0 := fake.Attempts(), sampleProc(b, pid), diskWrites(b, pid)
		time.Sleep(dur)
		polls := h.server.Count("GET")
		reportIdle(b, "agent", a0, sampleProc(b, pid), polls)
		b.ReportMetric(float64(diskWrites(b, pid)-d0), "agent-disk-write-bytes")
		b.ReportMetric(float64(fake.Attempts()-f0)/float64(polls), "forge-requests/poll")
		h.stop()
	}
}

// diskWrites is what the process caused to be written to storage
// (write_bytes of /proc/<pid>/io); its write system calls also count the
// HTTP request of each poll.
func diskWrites(b *testing.B, pid int) int64 {
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(io)) {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	b.Fatalf("/proc/%d/io has no write_bytes", pid)
	return 0
}
