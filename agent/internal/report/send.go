package report

import (
	"context"
	"errors"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// Run sends the queue, oldest first, until ctx ends: one request at a
// time, backing off exponentially (MinBackoff doubling up to MaxBackoff,
// or what the forge's Retry-After asks) while the forge fails. A second
// Run waits for the first to return.
func (r *Reporter) Run(ctx context.Context) {
	r.running.Lock()
	defer r.running.Unlock()
	r.poke()
	backoff := r.minBackoff()
	for {
		e, ok := r.head()
		if !ok {
			if !r.sleep(ctx, -1) {
				return
			}
			continue
		}
		err := r.send(ctx, e)
		if ctx.Err() != nil {
			return
		}
		wait := r.settle(e, err, backoff)
		if wait == 0 {
			backoff = r.minBackoff()
			continue
		}
		if !r.sleep(ctx, wait) {
			return
		}
		backoff = min(2*backoff, r.maxBackoff())
	}
}

func (r *Reporter) send(ctx context.Context, e entry) error {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return r.Post(ctx, e.Commit, e.Status)
}

// head is the oldest queued entry.
func (r *Reporter) head() (entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	if len(r.q.Entries) == 0 {
		return entry{}, false
	}
	r.inflight = r.q.Entries[0].Seq
	return r.q.Entries[0], true
}

// settle records the outcome of sending e and returns how long to wait
// before the next attempt: 0 after a success or a dropped status.
func (r *Reporter) settle(e entry, err error, backoff time.Duration) time.Duration {
	var wait time.Duration
	if err != nil && !errors.Is(err, forge.ErrRejected) {
		wait = retryAfter(err, backoff)
	}
	r.mu.Lock()
	r.inflight = 0
	wasFailing := r.note(err, wait)
	var saveErr error
	if wait == 0 {
		r.q.remove(func(x entry) bool { return x.Seq == e.Seq })
		saveErr = r.q.save()
	}
	queued := len(r.q.Entries)
	r.mu.Unlock()
	r.logSave(saveErr, e.Commit, e.Status)
	log := r.Log.With().Str("commit", e.Commit).Str("context", e.Status.Context).Str("state", string(e.Status.State)).Logger()
	switch {
	case err == nil && wasFailing:
		log.Info().Int("queued", queued).Msg("forge reachable again")
	case err == nil:
		log.Debug().Msg("commit status sent")
	case wait == 0:
		log.Error().Err(err).Msg("forge refused the commit status; dropped it")
	case !wasFailing:
		log.Warn().Err(err).Int("queued", queued).Dur("retryIn", wait).Msg("cannot send commit statuses to the forge; they stay queued")
	}
	return wait
}

// note updates the status view after an attempt; r.mu is held. It returns
// whether attempts were failing before this one.
func (r *Reporter) note(err error, wait time.Duration) bool {
	now := r.now()
	v := &r.view
	wasFailing := !v.FailingSince.IsZero()
	switch {
	case err == nil:
		v.LastSent, v.Error, v.FailingSince, v.NextAttempt = now, "", time.Time{}, time.Time{}
	case wait == 0: // the forge answered: reachable, but refused it
		v.Dropped++
		v.Error, v.FailingSince, v.NextAttempt = err.Error(), time.Time{}, time.Time{}
	default:
		v.Error, v.NextAttempt = err.Error(), now.Add(wait)
		if !wasFailing {
			v.FailingSince = now
		}
	}
	return wasFailing
}

// retryAfter is the forge's Retry-After when it asked for one (bounded by
// an hour), else backoff.
func retryAfter(err error, backoff time.Duration) time.Duration {
	var he *forge.HTTPError
	if errors.As(err, &he) && he.RetryAfter > 0 {
		return min(he.RetryAfter, time.Hour)
	}
	return backoff
}

// sleep waits for d (forever when d < 0, until woken) and reports whether
// ctx is still alive. A status added during a backoff does not cut it.
func (r *Reporter) sleep(ctx context.Context, d time.Duration) bool {
	r.mu.Lock()
	r.init()
	wake := r.wake
	r.mu.Unlock()
	if d < 0 {
		select {
		case <-ctx.Done():
			return false
		case <-wake:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *Reporter) minBackoff() time.Duration {
	if r.MinBackoff > 0 {
		return r.MinBackoff
	}
	return DefaultMinBackoff
}

func (r *Reporter) maxBackoff() time.Duration {
	if r.MaxBackoff > 0 {
		return r.MaxBackoff
	}
	return DefaultMaxBackoff
}
