package daemon_test

import (
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
