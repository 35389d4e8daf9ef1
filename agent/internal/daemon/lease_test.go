package daemon_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/lease"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// scriptedLease is a lease whose forge answers the claim, then is down
// for the first downs checks; the lease is then held by "other" for the
// next busy checks, then by this host.
type scriptedLease struct {
	mu                      sync.Mutex
	downs, busy             int
	takes, checks, releases int
}

func (l *scriptedLease) down() error {
	if l.downs > 0 {
		l.downs--
		return fmt.Errorf("reading the claims: %w", forge.ErrUnavailable)
	}
	return nil
}

func (l *scriptedLease) Take(context.Context, string) (lease.Claim, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.takes++
	return lease.Claim{Host: hostName, ID: 7, Seq: 7}, nil
}

func (l *scriptedLease) Check(context.Context) (lease.View, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checks++
	if err := l.down(); err != nil {
		return lease.View{}, err
	}
	mine := lease.Claim{Host: hostName, ID: 7, Seq: 7}
	if l.busy > 0 {
		l.busy--
		return lease.View{Group: "g", Budget: 1, Holders: []lease.Claim{{Host: "other", Seq: 3}}, Mine: mine}, nil
	}
	return lease.View{Group: "g", Budget: 1, Held: true, Holders: []lease.Claim{mine}, Mine: mine}, nil
}

func (l *scriptedLease) Release(context.Context, string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releases++
	return nil
}

var _ daemon.Leaser = (*scriptedLease)(nil)

// TestLeaseOutageIsTransient: a forge that cannot be reached while the
// host waits for the lease is no verdict: nothing is activated, the commit is not
// refused, and the next pass deploys it once the lease is held (after
// waiting for the other holder), then releases it.
func TestLeaseOutageIsTransient(t *testing.T) {
	h := newHost(t, nil)
	l := &scriptedLease{downs: 1, busy: 1}
	h.setup = func(d *daemon.Daemon) {
		d.Lease = l
		d.Config.Rollout.Group = "g"
		d.Config.Rollout.Lease.TTL = config.Duration(12 * time.Second)
	}
	main := h.commit("main", nil)
	h.start()
	if st := h.state(); len(h.activations()) != 0 || st == nil || st.IsBad(main) != nil || st.LastError == nil || !st.LastError.Transient {
		t.Fatalf("after the forge failed while waiting: activations %q, state %+v; want nothing activated, a transient error, no verdict", h.activations(), st)
	}
	if r := h.sync(false); r.Result != "deployed" || h.status().Deployed == nil || h.status().Deployed.Commit != main {
		t.Fatalf("sync once the forge is back = %+v, deployed %+v; want %s deployed", r, h.status().Deployed, main)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Two releases: the failed flight withdraws whatever claim it made,
	// the deployment releases the lease it held.
	if l.checks < 2 || l.releases != 2 || len(h.activations()) != 1 {
		t.Errorf("checks %d, releases %d, activations %q; want a wait behind the other holder, two releases, one activation",
			l.checks, l.releases, h.activations())
	}
}
