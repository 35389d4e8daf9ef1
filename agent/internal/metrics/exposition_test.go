package metrics

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// update rewrites testdata/exposition.golden: run
// go test ./agent/internal/metrics -run TestExpositionShape -update
// after adding a metric on purpose, and review the diff.
var update = flag.Bool("update", false, "rewrite testdata/exposition.golden")

// TestExpositionShape pins the names, label sets and types of every series
// that a representative agent exposes, and the help text of the agent's own
// families: dashboards and alerts depend on them. The golden file was
// written by the Prometheus client library the package used before; any
// exposition library must reproduce it.
func TestExpositionShape(t *testing.T) {
	m := New("dev")
	for _, p := range Phases {
		m.ObservePhase(p, ResultOK, 1500*time.Millisecond)
	}
	m.ObservePhase(PhaseBuild, ResultSkipped, 0)
	m.ObservePhase(PhaseConfirm, ResultError, time.Second)
	m.ObserveFetch(FetchUpdated)
	m.Update(status.Status{
		Deployed:     deployment("aaaaaaaaaaaa1111", 41, time.Now()),
		RebootNeeded: true,
		Pending:      &state.Pending{},
		ExitNode:     &status.ExitNode{Advertised: true, Online: true},
	})
	body := fetchExposition(t, m)
	parse(t, body) // the whole text must parse as the Prometheus text format
	got := shape(t, body)
	golden := filepath.Join("testdata", "exposition.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("exposition shape differs from %s (-want +got):\n%s", golden, diff)
	}
}

// fetchExposition scrapes m over real HTTP the way Prometheus does.
func fetchExposition(t *testing.T, m *Metrics) []byte {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", srv.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %s, %v", srv.URL, resp.Status, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q; want the text format 0.0.4", ct)
	}
	return body
}

// shape reduces an exposition to what must never change: the TYPE line of
// each family, each series without its value, and the HELP text of the
// avalanche_* families (for the others only that a HELP line exists).
// Series are sorted within their family; the Go version is a placeholder.
func shape(t *testing.T, body []byte) string {
	t.Helper()
	var out, series []string
	flush := func() {
		slices.Sort(series)
		out = append(out, series...)
		series = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := strings.ReplaceAll(sc.Text(), `"`+runtime.Version()+`"`, `"GOVERSION"`)
		switch {
		case strings.HasPrefix(line, "# HELP "):
			flush()
			if name := strings.Fields(line)[2]; !strings.HasPrefix(name, "avalanche_") {
				line = "# HELP " + name
			}
			out = append(out, line)
		case strings.HasPrefix(line, "# TYPE "):
			out = append(out, line)
		case line == "" || strings.HasPrefix(line, "#"):
			t.Errorf("unexpected line %q in exposition", line)
		default:
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				t.Fatalf("series line %q has no value", line)
			}
			series = append(series, line[:i])
		}
	}
	flush()
	return strings.Join(out, "\n") + "\n"
}
