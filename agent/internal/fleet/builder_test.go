package fleet

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// The builder's progress shows on each host's row: the builder's status
// carries it, the hosts in builder mode get their phase.
func TestBuilderProgressPerHost(t *testing.T) {
	const c1, c2 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	card := running(c1, status.Releasing, "", false)
	card.Builder = &status.Builder{Commit: c2, Hosts: map[string]status.BuilderHost{
		"cardinal":  {Phase: "done"},
		"raccoon00": {Phase: "building"},
		"eagle":     {Phase: "failed", Error: "does not evaluate"},
	}}
	racc := running(c1, status.Waiting, "", false)
	racc.Waiting = &status.Wait{Commit: c2}
	servers := map[string]status.Status{"cardinal": card, "raccoon00": racc, "eagle": running(c1, status.Idle, "", false),
		"calypso": {State: status.Idle, DaemonRunning: true, Deployed: &state.Deployment{Commit: c1}}}
	var hosts []Host
	for _, name := range []string{"cardinal", "raccoon00", "eagle", "calypso"} {
		hosts = append(hosts, Host{Name: name, Address: serveStatus(t, servers[name]).URL})
	}
	rows := Query(context.Background(), hosts, Options{Timeout: time.Second, MainCommit: c2})
	var got []string
	for _, r := range rows {
		got = append(got, r.Host+": "+r.Builder)
	}
	want := []string{"cardinal: done 222222222222", "raccoon00: building 222222222222", "eagle: failed 222222222222", "calypso: "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("builder column (-want +got):\n%s", diff)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	wantTable := `HOST       COMMIT        BEHIND  STATE      REBOOT  BUILDER                LAST ERROR
cardinal   111111111111  ?       releasing  no      done 222222222222      -
raccoon00  111111111111  ?       waiting    no      building 222222222222  -
eagle      111111111111  ?       idle       no      failed 222222222222    -
calypso    111111111111  ?       idle       no      -                      -
`
	if diff := cmp.Diff(wantTable, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}
