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

// Watchdog pings systemd at half the configured WatchdogSec until ctx ends.
// It returns at once when no watchdog is configured.
func (n *Notifier) Watchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.send(daemon.SdNotifyWatchdog)
		}
	}
}
