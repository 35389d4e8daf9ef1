package notify

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

type sent struct {
	mu   sync.Mutex
	msgs []string
	at   []time.Time
}

func (s *sent) send(state string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs, s.at = append(s.msgs, state), append(s.at, time.Now())
	return true, nil
}

// lastPing is when the last WATCHDOG=1 went out.
func (s *sent) lastPing() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last time.Time
	for i, m := range s.msgs {
		if m == "WATCHDOG=1" {
			last = s.at[i]
		}
	}
	return last
}

// A loop that stops beating sends no ping after its last beat, so systemd
// fires one WatchdogSec after the hang (it used to ping on for another
// WatchdogSec: two periods in all).
func TestNoPingAfterTheLastBeat(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	s := &sent{}
	n := &Notifier{Send: s.send}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.StartWatchdog(ctx)
	time.Sleep(60 * time.Millisecond)
	n.Beat()
	beat := time.Now()
	time.Sleep(500 * time.Millisecond) // the loop hangs
	if last := s.lastPing(); last.Sub(beat) > 10*time.Millisecond {
		t.Errorf("a ping went out %s after the last beat; want none (WatchdogSec 200ms)", last.Sub(beat))
	}
	release := n.Hold(time.Second) // a bounded wait pings on
	time.Sleep(200 * time.Millisecond)
	if since := time.Since(s.lastPing()); since > 100*time.Millisecond {
		t.Errorf("last ping %s ago during a hold; want pings every 50ms", since)
	}
	release()
}

func TestStatusIsOneLine(t *testing.T) {
	s := &sent{}
	n := &Notifier{Send: s.send}
	n.Status("failed: activate abc: exit status 4\n  warning: the following units failed: a.service\n")
	if want := "STATUS=failed: activate abc: exit status 4 | warning: the following units failed: a.service"; len(s.msgs) != 1 || s.msgs[0] != want {
		t.Errorf("sent %q; want [%q]", s.msgs, want)
	}
	if strings.Contains(s.msgs[0], "\n") {
		t.Error("a newline in STATUS= cuts it there")
	}
}
