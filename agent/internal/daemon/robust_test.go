package daemon_test

// Regression tests for issue 25 (items 6, 7 and 9): damage and restarts
// that the agent must neither hide nor turn into a verdict.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// Item 6: a journal line that does not decode, followed by whole records,
// is disk damage: the agent refuses to start and says what to do, as for
// a damaged state.json, instead of dropping every record after it.
func TestDamagedJournalRefusesToStart(t *testing.T) {
	h := newHost(t, nil)
	if err := os.MkdirAll(h.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(h.cfg.StateDir, "journal")
	damaged := `{"id":1,"step":"begin","event":"intent"}` + "\n\x00\x00\x00\n" +
		`{"id":1,"step":"activate","event":"intent","unit":"avalanche-switch-1"}` + "\n"
	if err := os.WriteFile(path, []byte(damaged), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := newDaemon(t, h.cfg).Run(ctx)
	if !errors.Is(err, journal.ErrDamaged) || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("Run with a damaged journal = %v; want ErrDamaged and what to do", err)
	}
	if b, _ := os.ReadFile(path); string(b) != damaged {
		t.Errorf("journal after the refusal = %q; want it untouched", b)
	}
}

// Item 7: a rollback begins after the confirm deadline, long after the
// forward switch's deadline. A restart during its switch must wait for
// that switch against the rollback's own deadline, not stop it at once as
// overdue and switch again under it.
func TestRestartDuringLateRollbackLetsItsSwitchFinish(t *testing.T) {
	h := newHost(t, func(c map[string]any) {
		d := c["deploy"].(map[string]any)
		// The rollback starts 10 s after the switch: past its 8 s deadline.
		d["systemdRun"], d["switchTimeout"], d["confirmTimeout"] = true, "8s", "10s"
		d["healthChecks"] = []string{"! grep -q bad " + filepath.Join(d["currentSystem"].(string), "marker")}
	})
	env, _ := nixtest.FakeSystemd(t, h.dir)
	slow := filepath.Join(h.dir, "slow-switch")
	h.opts.SwitchLog, h.opts.SwitchSleep, h.opts.SwitchSlowMarker = h.switchLog(), 5*time.Second, slow
	first := h.commit("first", nil)
	c := h.startChild(env...)
	if r := h.sync(false); !r.OK {
		t.Fatalf("first sync = %+v", r)
	}
	good := h.checkSettled(first).Deployed.StorePath

	h.opts.Marker = "bad-v2" // switches fine, then fails its health check
	second := h.commit("second, unhealthy", nil)
	h.triggerSync()
	h.waitSwitchBegins(2)
	if err := os.WriteFile(slow, nil, 0o644); err != nil { // the rollback's switch takes 5 s
		t.Fatal(err)
	}
	h.waitSwitchBegins(3)
	c.kill(t) // the rollback's unit goes on, as under systemd
	os.Remove(slow)
	h.startChild(env...)
	h.sync(false)

	ev := h.switchEvents()
	if len(ev) < 6 || ev[5] != "end|switch|"+good+"|0" {
		t.Errorf("switch log %q; want the rollback's switch to %s to run to its end (line 6)", ev, good)
	}
	h.checkNoOverlap(0)
	st := h.checkSettled(first)
	if st.Deployed.StorePath != good || currentTarget(t, h.current) != good {
		t.Errorf("deployed %s, running %s; want the first system %s", st.Deployed.StorePath, currentTarget(t, h.current), good)
	}
	if b := st.IsBad(second); b == nil || !strings.Contains(b.Reason, "not healthy") {
		t.Errorf("IsBad(%s) = %+v; want refused for its failed health check", second, b)
	}
}
