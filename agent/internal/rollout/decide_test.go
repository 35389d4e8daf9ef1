package rollout

import (
	"context"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := config.Rollout{Wave: 2, Soak: config.Duration(10 * time.Minute),
		Waves: map[string]int{"raccoon00": 0, "opi01": 0, "raccoon01": 1, "raccoon02": 2, "raccoon03": 3}}
	st := func(host string, s forge.State, ago time.Duration, desc string) forge.CommitStatus {
		return forge.CommitStatus{Status: forge.Status{Context: "avalanche/" + host, State: s, Description: desc}, Updated: now.Add(-ago)}
	}
	soaked := []forge.CommitStatus{st("raccoon00", forge.Success, time.Hour, "deployed"), st("opi01", forge.Success, time.Hour, "up to date"),
		st("raccoon01", forge.Success, 11*time.Minute, "deployed")}
	for _, tc := range []struct {
		name     string
		statuses []forge.CommitStatus
		want     Verdict
		by       string
	}{
		{"nothing yet", nil, Waiting, ""},
		{"all soaked", soaked, Open, ""},
		{"later waves do not count", append(soaked, st("raccoon03", forge.Failure, 0, "x")), Open, ""},
		{"still soaking", append(soaked[:2:2], st("raccoon01", forge.Success, time.Minute, "deployed")), Waiting, ""},
		{"deploying", append(soaked[:2:2], st("raccoon01", forge.Pending, time.Minute, "deploying")), Waiting, ""},
		{"retrying is no verdict", append(soaked[:2:2], st("raccoon01", forge.Error, time.Minute, "failed, will retry")), Waiting, ""},
		{"canary rolled back", append(soaked[1:2:2], st("raccoon00", forge.Failure, time.Minute, "rolled back: k3s")), Stopped, "raccoon00"},
		{"paused", append(soaked, forge.CommitStatus{Status: forge.Status{Context: ControlContext, State: forge.Pending, Description: "paused from calypso"}}), Paused, ControlContext},
		{"resumed", append(soaked, forge.CommitStatus{Status: forge.Status{Context: ControlContext, State: forge.Success, Description: "resumed"}}), Open, ""},
		{"skip opens a stopped rollout", []forge.CommitStatus{st("raccoon00", forge.Failure, 0, "rolled back"),
			{Status: forge.Status{Context: ControlContext, State: forge.Success, Description: "skip the gate from calypso"}}}, Open, ControlContext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide("c0ffee", r, tc.statuses, now)
			if d.Verdict != tc.want || d.By != tc.by {
				t.Errorf("Decide = %s by %q (%s); want %s by %q", d.Verdict, d.By, d.Reason, tc.want, tc.by)
			}
		})
	}
}

func TestGateAsksOncePerInterval(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	reads := 0
	statuses := []forge.CommitStatus{{Status: forge.Status{Context: "avalanche/a", State: forge.Success}, Updated: now}}
	g := &Gate{Rollout: config.Rollout{Wave: 1, Waves: map[string]int{"a": 0, "b": 1}, Soak: config.Duration(time.Minute)},
		Interval: 30 * time.Second, Now: func() time.Time { return now },
		Read: func(_ context.Context, _ string) ([]forge.CommitStatus, error) { reads++; return statuses, nil }}
	check := func(commit string, want Verdict, wantReads int) {
		t.Helper()
		d, _, err := g.Check(context.Background(), commit)
		if err != nil || d.Verdict != want || reads != wantReads {
			t.Fatalf("Check(%s) = %s, %v after %d reads; want %s after %d", commit, d.Verdict, err, reads, want, wantReads)
		}
	}
	check("c1", Waiting, 1)
	now = now.Add(10 * time.Second)
	check("c1", Waiting, 1) // cached: within the interval
	now = now.Add(55 * time.Second)
	check("c1", Open, 2) // soak over, asked again after the interval
	now = now.Add(time.Hour)
	check("c1", Open, 2) // open stays open without asking
	check("c2", Open, 3) // a new commit is read at once
}
