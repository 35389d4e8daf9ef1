package daemon_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// A forge outage across a whole confirm window is not the commit's fault:
// the rollback finds the remote silent for the previous system too, so no
// verdict; once the forge is back the commit deploys without --force.
func TestRemoteDownAcrossConfirmIsNoVerdict(t *testing.T) {
	h := newHost(t, nil)
	h.commit("v1", nil)
	var armed atomic.Bool
	h.setup = func(d *daemon.Daemon) {
		d.Hooks.Phase = func(phase, result string, _ time.Duration) {
			if phase == "activate" && armed.Swap(false) {
				h.server.Close() // the forge goes down as the switch ends
			}
		}
	}
	h.start()
	armed.Store(true)
	h.opts.Marker = "v2"
	c2 := h.commit("v2", nil)
	if r := h.sync(false); r.OK {
		t.Fatalf("sync with the forge down during confirm = %+v; want a failed pass", r)
	}
	st := h.status()
	for _, b := range st.Refused {
		if b.Commit == c2 {
			t.Fatalf("commit refused for a forge outage: %+v", b)
		}
	}
	if st.Deployed == nil || st.Deployed.Commit == c2 {
		t.Fatalf("deployed = %+v; want the previous commit back", st.Deployed)
	}
	h.server.Start(t)
	if r := h.sync(false); !r.OK {
		t.Fatalf("sync with the forge back = %+v; want the commit deployed", r)
	}
	if st := h.status(); st.Deployed == nil || st.Deployed.Commit != c2 {
		t.Fatalf("deployed = %+v; want %s without --force", st.Deployed, c2[:8])
	}
}

// Right after a start, until the running system's secrets are back on the
// (emptied) RAM file system, status says so instead of idle.
func TestStatusSaysStartingUntilSecretsAreBack(t *testing.T) {
	h := newHost(t, nil)
	h.commit("v1", nil)
	h.start()
	h.stop()
	p := newPauser()
	p.armed.Store(true)
	h.setup = func(d *daemon.Daemon) { d.Secrets = &pausingSecrets{pauser: p} }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := newDaemon(t, h.cfg)
	h.setup(d)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	p.wait(t)
	st := h.status()
	if st.State != status.Starting {
		t.Errorf("status while the secrets are reinstalled: state %q; want %q", st.State, status.Starting)
	}
	cancel()
	<-done
}
