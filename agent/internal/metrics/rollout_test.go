package metrics

import (
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

func TestRolloutMetrics(t *testing.T) {
	m := New("dev")
	r := m.NewRollout()
	const waiting, stopped = `avalanche_rollout_held_seconds{verdict=waiting}`, `avalanche_rollout_held_seconds{verdict=stopped}`
	held := func(verdict rollout.Verdict, ago time.Duration) status.Status {
		return status.Status{Rollout: &rollout.Decision{Commit: "c1", Verdict: verdict, HeldSince: time.Now().Add(-ago)}}
	}
	r.Update(held(rollout.Waiting, time.Hour))
	got := series(scrape(t, m))
	if v := got[waiting]; v < 3600 || v > 3700 {
		t.Errorf("%s = %v; want about 3600 (held an hour)", waiting, v)
	}
	r.Update(held(rollout.Stopped, 2*time.Hour))
	got = series(scrape(t, m))
	if _, ok := got[waiting]; ok || got[stopped] < 7200 {
		t.Errorf("after the stop: %v; want only %s, about 7200", got, stopped)
	}
	r.Update(held(rollout.Open, 0))
	for s := range series(scrape(t, m)) {
		if s == waiting || s == stopped {
			t.Errorf("%s present with the gate open; want absent", s)
		}
	}
}
