// Package notify tells systemd about the agent's state: READY once the
// socket listens, one STATUS line per state change, and watchdog pings.
// Outside systemd (no NOTIFY_SOCKET) it does nothing at all.
package notify

import (
	"context"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends sd_notify messages. Its zero value talks to systemd through
// NOTIFY_SOCKET when that is set and is silent otherwise.
type Notifier struct {
	// Send overrides daemon.SdNotify in tests.
	Send func(state string) (bool, error)

	mu     sync.Mutex
	status string
	every  time.Duration // WatchdogSec; 0 without a watchdog
	lease  time.Time     // pings continue until then (Beat)
	hold   time.Time     // or until then (Hold)
}

func (n *Notifier) send(state string) {
	if n.Send != nil {
		n.Send(state)
		return
	}
	daemon.SdNotify(false, state) // not under systemd: returns false, nil
}

// Ready reports start-up complete.
func (n *Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// Stopping reports shutdown.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// Status sets the one-line status shown by systemctl status, once per change.
func (n *Notifier) Status(line string) {
	n.mu.Lock()
	changed := line != n.status
	n.status = line
	n.mu.Unlock()
	if changed {
		n.send("STATUS=" + line)
	}
}

// StartWatchdog pings systemd at half the configured WatchdogSec until ctx
// ends, but only while the reconcile loop proves progress: a ping goes out
// only inside a lease that Beat (the loop came round) or Hold (the loop
// waits on a bounded operation, such as a build with its timeout) granted.
// A deadlocked loop grants nothing, the pings stop and systemd restarts the
// agent. It does nothing when no watchdog is configured.
func (n *Notifier) StartWatchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return
	}
	n.mu.Lock()
	n.every = every
	n.lease = time.Now().Add(every)
	n.mu.Unlock()
	go n.pinger(ctx, every)
}

func (n *Notifier) pinger(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n.mu.Lock()
			alive := now.Before(n.lease) || now.Before(n.hold)
			n.mu.Unlock()
			if alive {
				n.send(daemon.SdNotifyWatchdog)
			}
		}
	}
}

// Beat tells the watchdog the loop made progress: pings continue for one
// more watchdog interval.
func (n *Notifier) Beat() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.every > 0 {
		n.lease = time.Now().Add(n.every)
	}
}

// Hold keeps the pings going for at most d while the loop waits on an
// operation bounded by d (plus one watchdog interval of slack); release
// ends the hold early.
func (n *Notifier) Hold(d time.Duration) (release func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.every == 0 {
		return func() {}
	}
	until := time.Now().Add(d + n.every)
	if until.After(n.hold) {
		n.hold = until
	}
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.hold.Equal(until) {
			n.hold = time.Time{}
		}
		n.lease = time.Now().Add(n.every)
	}
}
