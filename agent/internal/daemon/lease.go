package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/lease"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Leaser is the disruption budget's lease (rollout.group); *lease.Lease
// is one.
type Leaser interface {
	Take(ctx context.Context, commit string) (lease.Claim, error)
	Check(ctx context.Context) (lease.View, error)
	Release(ctx context.Context, commit string) error
}

// leaseIntent names the group before the claim is posted: from this
// record on, a recovery releases whatever the forge holds for the host.
func (d *Daemon) leaseIntent(_ context.Context, f *journal.Flight) {
	f.Lease = &journal.Lease{Group: d.Config.Rollout.Group}
}

// takeLease claims the group's lease and waits until the claim is among
// the budget's first, renewing it while it waits. It is the step before
// anything on the host changes. Waiting writes nothing but the claim and
// its renewals (every ttl/3) to the forge, and nothing to disk. A forge
// that cannot be reached is no verdict (transient: the flight is tried
// again); a newer commit pre-empts the wait.
func (d *Daemon) takeLease(ctx context.Context, f *journal.Flight) error {
	pctx, stop := d.preemptible(ctx, f)
	defer stop()
	ttl := d.Config.Rollout.Lease.TTL.D()
	claim, err := d.Lease.Take(pctx, f.Commit)
	if err != nil {
		return leaseFault(ctx, pctx, err)
	}
	f.Lease.Seq = claim.Seq
	renewAt, since := d.now().Add(ttl/3), d.now()
	var ahead []string
	for {
		v, err := d.Lease.Check(pctx)
		if err != nil {
			return leaseFault(ctx, pctx, err)
		}
		v.Since = since
		d.setLease(&v)
		if v.Held {
			f.Lease.Held = true
			d.logLease(f, v, "lease held")
			d.renewLease(ctx, f, ttl)
			return nil
		}
		if now := holderNames(v); !slices.Equal(now, ahead) {
			ahead = now
			d.logLease(f, v, "waiting for the lease of group "+v.Group+": held by "+strings.Join(now, ", "))
		}
		d.setPhase(status.Waiting, fmt.Sprintf("lease of group %s (%d at once) held by %s", v.Group, v.Budget, strings.Join(ahead, ", ")))
		if v.Mine.Host == "" || !d.now().Before(renewAt) {
			// A waiting claim expires too: renew it, keeping its place.
			if _, err := d.Lease.Take(pctx, f.Commit); err != nil {
				return leaseFault(ctx, pctx, err)
			}
			renewAt = d.now().Add(ttl / 3)
		}
		select {
		case <-pctx.Done():
			return leaseFault(ctx, pctx, context.Cause(pctx))
		case <-time.After(d.leasePoll(ttl)):
		}
	}
}

// leasePoll is how often a waiting host reads the claims: the poll
// interval, at most ttl/6 and 10s, so a freed lease is taken soon.
func (d *Daemon) leasePoll(ttl time.Duration) time.Duration {
	return min(d.Config.PollInterval.D(), ttl/6, 10*time.Second)
}

// leaseFault classifies a failure to take the lease where it arose: a
// newer commit supersedes the flight, a stop is no verdict, anything
// else (the forge down, a refused token) is transient: never the
// commit's fault.
func leaseFault(ctx, pctx context.Context, err error) error {
	if cause := context.Cause(pctx); errors.Is(cause, errSuperseded) {
		return fault.New(fault.Superseded, fmt.Errorf("waiting for the lease: %w", cause))
	}
	if ctx.Err() != nil {
		return fault.New(fault.Shutdown, err)
	}
	return fault.New(fault.Transient, err)
}

func holderNames(v lease.View) []string {
	var names []string
	for _, c := range v.Holders {
		names = append(names, c.Host)
	}
	return names
}

// renewLease renews f's claim every ttl/3 until the flight releases it,
// keeping its place. A renewal that fails is tried again at the next
// tick; after ttl without one the claim has expired. Stopping waits for a
// renewal in flight: one that reached the forge after the release would
// claim the lease again.
func (d *Daemon) renewLease(ctx context.Context, f *journal.Flight, ttl time.Duration) {
	stop, done := make(chan struct{}), make(chan struct{})
	d.mu.Lock()
	prev := d.leaseStop
	d.leaseStop = func() { close(stop); <-done }
	d.mu.Unlock()
	if prev != nil {
		prev()
	}
	commit, group := f.Commit, f.Lease.Group
	go func() {
		defer close(done)
		t := time.NewTicker(max(ttl/3, time.Second))
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return // the process stops: the next start renews
			case <-t.C:
			}
			c, err := d.Lease.Take(ctx, commit)
			if err != nil {
				d.Log.Warn().Err(err).Str("commit", commit).Str("phase", journal.StepLease).Str("leaseGroup", group).
					Msg("renewing the lease failed; it expires " + ttl.String() + " after the last renewal")
				continue
			}
			d.Log.Debug().Str("commit", commit).Str("phase", journal.StepLease).Str("leaseGroup", group).
				Int64("leaseSeq", c.Seq).Msg("lease renewed")
		}
	}()
}

// resumeLease renews, at recovery, a lease that a flight cut short took
// and did not release: the recovery finishes or undoes the flight under
// it, and the end of the flight releases it. A claim that expired in the
// meantime starts at the end of the queue; the recovery does not wait for
// it (a half-switched host cannot).
func (d *Daemon) resumeLease(ctx context.Context, f *journal.Flight) {
	if d.Lease == nil || f.Lease == nil || !f.Lease.Held || f.Lease.Released || f.Lease.Kept {
		return // not held: nothing changed under it, the end withdraws the claim
	}
	c, err := d.Lease.Take(ctx, f.Commit)
	ev := d.Log.Info()
	if err != nil {
		ev = d.Log.Warn().Err(err)
	} else if c.Seq != f.Lease.Seq && f.Lease.Seq != 0 {
		ev = d.Log.Warn()
	}
	ev.Str("commit", f.Commit).Uint64("flight", f.ID).Str("phase", journal.StepLease).Str("leaseGroup", f.Lease.Group).
		Int64("leaseSeq", c.Seq).Int64("leaseSeqBefore", f.Lease.Seq).Msg("recovery renews the lease the cut-short deployment took")
	if err == nil {
		d.renewLease(ctx, f, d.Config.Rollout.Lease.TTL.D())
	}
}

// releaseLease gives back the lease f took, unless a reboot follows the
// flight (the lease covers it until it expires). It is called before the
// end of the flight is journaled, and again by a recovery that finds an
// ended flight whose release is not on record: a release is idempotent.
func (d *Daemon) releaseLease(ctx context.Context, f *journal.Flight) {
	d.mu.Lock()
	stop := d.leaseStop
	d.leaseStop = nil
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
	if d.Lease == nil || f.Lease == nil || f.Lease.Released || f.Lease.Kept {
		return
	}
	defer d.setLease(nil)
	if f.Result == resultDeployed && d.rebootFollows() {
		f.Lease.Kept = true
		d.Log.Info().Str("commit", f.Commit).Uint64("flight", f.ID).Str("phase", journal.StepLease).Str("leaseGroup", f.Lease.Group).
			Msg("keeping the lease over the reboot that follows; it expires " + d.Config.Rollout.Lease.TTL.D().String() + " after its last renewal")
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := d.Lease.Release(rctx, f.Commit); err != nil {
		d.Log.Warn().Err(err).Str("commit", f.Commit).Uint64("flight", f.ID).Str("phase", journal.StepLease).
			Str("leaseGroup", f.Lease.Group).Msg("releasing the lease failed; it expires on its own")
		return
	}
	f.Lease.Released = true
	d.Log.Info().Str("commit", f.Commit).Uint64("flight", f.ID).Str("phase", journal.StepLease).Str("leaseGroup", f.Lease.Group).
		Int64("leaseSeq", f.Lease.Seq).Msg("lease released")
}

// logLease writes one journal line about f's lease.
func (d *Daemon) logLease(f *journal.Flight, v lease.View, msg string) {
	var holders []string
	for _, c := range v.Holders {
		holders = append(holders, fmt.Sprintf("%s@%d", c.Host, c.Seq))
	}
	d.Log.Info().Str("commit", f.Commit).Uint64("flight", f.ID).Str("phase", journal.StepLease).
		Str("leaseGroup", v.Group).Int("leaseBudget", v.Budget).Int64("leaseSeq", v.Mine.Seq).
		Bool("leaseHeld", v.Held).Strs("leaseHolders", holders).Msg(msg)
}

// setLease sets the lease view status shows; nil once none is wanted.
func (d *Daemon) setLease(v *lease.View) {
	d.mu.Lock()
	d.lease = v
	d.mu.Unlock()
}

// LeaseView is the lease as status and the metrics show it: the last view while a
// flight wants or holds the lease, nil otherwise.
func (d *Daemon) LeaseView() *lease.View {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lease == nil {
		return nil
	}
	v := *d.lease
	return &v
}
