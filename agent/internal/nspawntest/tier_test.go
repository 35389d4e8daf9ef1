package nspawntest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// TestSystemd runs the scenarios that can share one booted host, in order:
// each leaves the host deployed and idle.
func TestSystemd(t *testing.T) {
	h := NewHost(t, HostOptions{Name: "avalanche-test", First: nixtest.FlakeOptions{Marker: "first"}})
	first := nixtest.Git(t, h.Repo.Work, "rev-parse", "HEAD")
	h.Deployed(t, first, 2*time.Minute)

	t.Run("ready and status", func(t *testing.T) {
		p := h.Show(t, "avalanche-agent", "Type", "ActiveState", "SubState", "StatusText", "WatchdogUSec", "NRestarts")
		if p["Type"] != "notify" || p["ActiveState"] != "active" || p["SubState"] != "running" {
			t.Errorf("systemctl show avalanche-agent = %v; want a notify unit, active (running)", p)
		}
		if !strings.Contains(p["StatusText"], first[:8]) {
			t.Errorf("StatusText = %q; want the deployed commit %s", p["StatusText"], first[:8])
		}
	})

	t.Run("push deployed through a transient switch unit", func(t *testing.T) {
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "second"}, "second system")
		if out, err := h.Agent(t, "sync", "--wait"); err != nil {
			t.Fatalf("sync --wait: %v\n%s", err, out)
		}
		st := h.Deployed(t, c, time.Minute)
		unit := "avalanche-switch-" + strconv.FormatUint(st.Deployed.Flight, 10)
		j := h.Journal(t, "-u", unit)
		if !strings.Contains(j, unit) {
			t.Errorf("journalctl -u %s shows nothing of the switch:\n%s", unit, j)
		}
	})
}
