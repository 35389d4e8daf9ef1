package daemon_test

import (
	"strings"
	"testing"
	"time"
)

// TestPollPicksUpPush: without any sync, a push shows in status within one
// poll interval (plus jitter and the build).
func TestPollPicksUpPush(t *testing.T) {
	h := newHost(t, func(c map[string]any) { c["pollInterval"] = "1s" })
	h.commit("first", nil)
	h.start()
	h.opts.Marker = "v2"
	pushed := time.Now()
	c2 := h.commit("second", nil)
	for time.Since(pushed) < 10*time.Second {
		s := h.status()
		if s.Fetched.Commit == c2 {
			took := time.Since(pushed)
			t.Logf("push visible in status after %v (poll interval 1s)", took)
			if took > 2*time.Second {
				t.Errorf("push took %v to show; want within one poll interval (1s ±10%%) plus a fetch", took)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("commit %s never showed in status", c2)
}

// TestUnreachableRemoteBacksOff: a remote that goes away gives a clear
// error in status and a retry in seconds, not after the poll interval.
func TestUnreachableRemoteBacksOff(t *testing.T) {
	h := newHost(t, nil) // pollInterval 1h
	h.commit("first", nil)
	h.start()
	h.server.Close()
	r := h.sync(false)
	if r.OK || !strings.Contains(r.Error, "unreachable") {
		t.Fatalf("sync with the server gone = %+v; want an unreachable error", r)
	}
	s := h.status()
	if !strings.Contains(s.LastError, "fetch failed") || !strings.Contains(s.LastError, h.server.URL) {
		t.Errorf("status.LastError = %q; want a fetch failure naming the remote", s.LastError)
	}
	if wait := time.Until(s.NextPoll); wait > 10*time.Second {
		t.Errorf("next poll in %v after a network failure; want a backoff of seconds, not the 1h poll interval", wait)
	}
	if s.Deployed == nil || s.State != "failed" {
		t.Errorf("status = %q deployed %+v; want failed with the deployment kept", s.State, s.Deployed)
	}
}
