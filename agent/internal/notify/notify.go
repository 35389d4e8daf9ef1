// Package notify tells systemd about the agent's state: READY once the
// socket listens, one STATUS line per state change, and watchdog pings.
// Outside systemd (no NOTIFY_SOCKET) it does nothing at all.
package notify

import (
	"context"
	"strings"
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
	pinged time.Time     // the last ping
	hold   time.Time     // pings continue until then (Hold)
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

// Status sets the one-line status shown by systemctl status, once per
// change. sd_notify's STATUS= is one line: a newline would end it there, so
// the lines of a multi-line status are joined with " | ".
func (n *Notifier) Status(line string) {
	line = strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(line), "\n", " | ")), " ")
	n.mu.Lock()
	changed := line != n.status
	n.status = line
	n.mu.Unlock()
	if changed {
		n.send("STATUS=" + line)
	}
}

// StartWatchdog sends systemd's watchdog pings only as proof of progress:
// each Beat (the reconcile loop came round) pings at once, at most four
// times per WatchdogSec, and a Hold (the loop waits on an operation bounded
// by its own timeout, such as a build) keeps pinging at a quarter of
// WatchdogSec until it is released or runs out. A loop that hangs sends
// nothing more after its last beat, so systemd restarts it one WatchdogSec
// later, not two. It does nothing when no watchdog is configured.
func (n *Notifier) StartWatchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return
	}
	n.mu.Lock()
	n.every = every
	n.mu.Unlock()
	n.Beat()
	go n.pinger(ctx, every)
}

func (n *Notifier) pinger(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n.mu.Lock()
			alive := now.Before(n.hold)
			if alive {
				n.pinged = now
			}
			n.mu.Unlock()
			if alive {
				n.send(daemon.SdNotifyWatchdog)
			}
		}
	}
}

// Beat tells the watchdog the loop made progress.
func (n *Notifier) Beat() {
	n.mu.Lock()
	now := time.Now()
	ping := n.every > 0 && now.Sub(n.pinged) >= n.every/4
	if ping {
		n.pinged = now
	}
	n.mu.Unlock()
	if ping {
		n.send(daemon.SdNotifyWatchdog)
	}
}

// Hold keeps the pings going for at most d while the loop waits on an
// operation bounded by d; release ends the hold early and counts as a beat.
func (n *Notifier) Hold(d time.Duration) (release func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.every == 0 {
		return func() {}
	}
	until := time.Now().Add(d)
	if until.After(n.hold) {
		n.hold = until
	}
	return func() {
		n.mu.Lock()
		if n.hold.Equal(until) {
			n.hold = time.Time{}
		}
		n.pinged = time.Time{} // the release is news: ping now
		n.mu.Unlock()
		n.Beat()
	}
}
