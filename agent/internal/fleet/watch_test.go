package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// serveRounds answers the n-th status request with rounds[n] (the last one
// from then on); a nil status answers 503.
func serveRounds(t *testing.T, rounds ...*status.Status) string {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s := rounds[min(n, len(rounds)-1)]
		n++
		mu.Unlock()
		if s == nil {
			http.Error(w, "agent starting", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestWatch: the table refreshes until every host has main's tip or
// refuses it; a host that failed on it makes the watch fail, by name.
func TestWatch(t *testing.T) {
	dir, ids := gitRepo(t)
	at := func(c, st string) *status.Status {
		s := running(ids[c], st, "", false)
		return &s
	}
	refusing := at("c5", status.Failed)
	refusing.Refused = []state.BadCommit{{Commit: ids["c6"], Phase: "activate", Reason: "rolled back"}}
	hosts := []Host{
		{Name: "eagle", Address: serveRounds(t, at("c6", status.Idle))},
		{Name: "opi01", Address: serveRounds(t, at("c5", status.Building), at("c5", status.Building), at("c6", status.Idle))},
		{Name: "possum", Address: serveRounds(t, nil, at("c6", status.Idle))},
		{Name: "raccoon03", Address: serveRounds(t, refusing)},
	}
	var stdout, stderr bytes.Buffer
	args := []string{"--repo", dir, "--hosts-file", writeHosts(t, hosts), "--watch", "--interval", "10ms"}
	err := Run(context.Background(), args, &stdout, &stderr)
	if err == nil || err.Error() != "fleet: 1 host failed on "+ids["c6"]+": raccoon03" {
		t.Errorf("Run(%q) = %v; want raccoon03 named as failed", args, err)
	}
	var summaries []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if m := regexp.MustCompile(`^\d\d:\d\d:\d\d  (main .*)$`).FindStringSubmatch(l); m != nil {
			summaries = append(summaries, strings.ReplaceAll(m[1], ids["c6"][:12], "<c6>"))
		}
	}
	want := []string{
		"main <c6>: 1 of 4 hosts have it, 1 failed (raccoon03), waiting for 2",
		"main <c6>: 2 of 4 hosts have it, 1 failed (raccoon03), waiting for 1",
		"main <c6>: 3 of 4 hosts have it, 1 failed (raccoon03)",
	}
	if diff := cmp.Diff(want, summaries); diff != "" {
		t.Errorf("watch rounds (-want +got):\n%s\noutput:\n%s", diff, stdout.String())
	}
	if n := strings.Count(stdout.String(), "HOST "); n != 3 {
		t.Errorf("watch printed %d tables; want 3", n)
	}
}

func TestWatchRefusesJSON(t *testing.T) {
	err := Run(context.Background(), []string{"--watch", "--json"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "does not go with --json") {
		t.Errorf("Run(--watch --json) = %v; want a clear refusal", err)
	}
}

func TestWatchTimesOut(t *testing.T) {
	dir, ids := gitRepo(t)
	s := running(ids["c4"], status.Building, "", false)
	hosts := []Host{{Name: "slow", Address: serveRounds(t, &s)}}
	args := []string{"--repo", dir, "--hosts-file", writeHosts(t, hosts), "--watch", "--interval", "10ms", "--watch-timeout", "100ms"}
	err := Run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "not every host has "+ids["c6"]+" after 100ms") {
		t.Errorf("Run(%q) = %v; want a timeout naming the commit", args, err)
	}
}
