package metrics

import (
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

func TestBuilderMetrics(t *testing.T) {
	m := New("dev")
	b := m.NewBuilder()
	got := series(scrape(t, m))
	if v, ok := got["avalanche_substituted_bytes_total"]; !ok || v != 0 {
		t.Errorf("avalanche_substituted_bytes_total = %v (present %v); want 0 from the start", v, ok)
	}
	if v, ok := got["avalanche_release_age_seconds"]; ok {
		t.Errorf("avalanche_release_age_seconds = %v before any release; want absent", v)
	}

	b.ObserveSubstituted(1000)
	b.ObserveSubstituted(24)
	built := time.Now().Add(-90 * time.Second)
	b.Update(status.Status{Deployed: &state.Deployment{Commit: "c1", Release: &state.Release{Builder: "cardinal", Built: built}}})
	got = series(scrape(t, m))
	if v := got["avalanche_substituted_bytes_total"]; v != 1024 {
		t.Errorf("avalanche_substituted_bytes_total = %v; want 1024", v)
	}
	if v := got["avalanche_release_age_seconds"]; v < 90 || v > 120 {
		t.Errorf("avalanche_release_age_seconds = %v; want about 90", v)
	}

	b.Update(status.Status{Deployed: &state.Deployment{Commit: "c2", Fallback: true}}) // evaluated locally
	if v, ok := series(scrape(t, m))["avalanche_release_age_seconds"]; ok {
		t.Errorf("avalanche_release_age_seconds = %v for a system evaluated here; want absent", v)
	}
}
