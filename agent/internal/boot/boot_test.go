package boot

import (
	"testing"
	"time"
)

func TestRemaining(t *testing.T) {
	up := 100 * time.Second
	c := Clock{ID: func() string { return "boot-a" }, Uptime: func() time.Duration { return up }}
	deadline := c.After(30 * time.Second)
	up += 10 * time.Second
	if rem, ok := c.Remaining(deadline); !ok || rem != 20*time.Second {
		t.Errorf("Remaining after 10s = %v, %v; want 20s, true", rem, ok)
	}
	other := Clock{ID: func() string { return "boot-b" }, Uptime: func() time.Duration { return time.Second }}
	if _, ok := other.Remaining(deadline); ok {
		t.Error("a deadline of another boot has a known remaining time")
	}
	if _, ok := c.Remaining(Instant{}); ok {
		t.Error("an unset deadline has a known remaining time")
	}
}

func TestKernelClock(t *testing.T) {
	var c Clock
	a := c.Now()
	time.Sleep(10 * time.Millisecond)
	b := c.Now()
	if a.Boot == "" || a.Boot != b.Boot || b.Uptime-a.Uptime < 10*time.Millisecond {
		t.Errorf("kernel clock: %+v then %+v; want the same boot and time going on", a, b)
	}
}
