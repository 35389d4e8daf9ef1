package daemon

import (
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
)

func TestNextWaitBacksOff(t *testing.T) {
	d := &Daemon{Config: &config.Config{PollInterval: config.Duration(60 * time.Second)}}
	tests := []struct {
		failures int
		want     time.Duration // ±10% jitter
	}{
		{0, 60 * time.Second},
		{1, 5 * time.Second},
		{2, 10 * time.Second},
		{4, 40 * time.Second},
		{7, 5 * time.Minute}, // 320s capped at max(poll interval, 5m)
		{60, 5 * time.Minute},
	}
	for _, tt := range tests {
		for range 50 {
			got := d.nextWait(tt.failures)
			if lo, hi := tt.want-tt.want/10, tt.want+tt.want/10; got < lo || got > hi {
				t.Fatalf("nextWait(%d) = %v; want %v ±10%%", tt.failures, got, tt.want)
			}
		}
	}
}

func TestInWindow(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 26, h, m, 0, 0, time.Local) }
	tests := []struct {
		window string
		t      time.Time
		want   bool
	}{
		{"02:00-05:00", at(3, 0), true},
		{"02:00-05:00", at(5, 0), false},
		{"02:00-05:00", at(1, 59), false},
		{"23:00-01:00", at(23, 30), true}, // wraps midnight
		{"23:00-01:00", at(0, 30), true},
		{"23:00-01:00", at(12, 0), false},
		{"garbage", at(3, 0), false},
	}
	for _, tt := range tests {
		if got := inWindow(tt.window, tt.t); got != tt.want {
			t.Errorf("inWindow(%q, %s) = %v; want %v", tt.window, tt.t.Format("15:04"), got, tt.want)
		}
	}
}
