package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// gitRepo makes a real repository: main is c1..c6 in a line, side branches
// off c3 with one commit. It returns the repository and the commit ids.
func gitRepo(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	ids := map[string]string{}
	git("init", "-q", "-b", "main")
	for i := 1; i <= 6; i++ {
		git("commit", "-q", "--allow-empty", "-m", fmt.Sprintf("c%d", i))
		ids[fmt.Sprintf("c%d", i)] = git("rev-parse", "HEAD")
		if i == 3 {
			git("branch", "side")
		}
	}
	git("checkout", "-q", "side")
	git("commit", "-q", "--allow-empty", "-m", "side")
	ids["side"] = git("rev-parse", "HEAD")
	git("checkout", "-q", "main")
	return dir, ids
}

func serveStatus(t *testing.T, s status.Status) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func running(commit, st, lastErr string, reboot bool) status.Status {
	return status.Status{
		State: st, LastError: lastErr, RebootNeeded: reboot, DaemonRunning: true,
		Deployed: &state.Deployment{Commit: commit, Result: "deployed"},
	}
}

// fleet20 starts 20 real status servers on loopback, some of them stopped,
// hanging, failing or garbled, and returns the hosts and the rows Query must
// produce (Err reduced to a substring it must contain).
func fleet20(t *testing.T, ids map[string]string) ([]Host, []Row) {
	t.Helper()
	var hosts []Host
	var want []Row
	for i := range 20 {
		name := fmt.Sprintf("host%02d", i)
		var srv *httptest.Server
		row := Row{Host: name, Reachable: true, State: status.Idle, Behind: -1}
		switch {
		case i == 3 || i == 11 || i == 17: // stopped
			srv = serveStatus(t, status.Status{})
			srv.Close()
			row = Row{Host: name, Behind: -1, Err: "connection refused"}
		case i == 5: // hangs past the timeout
			release := make(chan struct{})
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) })
			row = Row{Host: name, Behind: -1, Err: "no answer within 500ms"}
		case i == 8: // the endpoint fails
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "agent not ready", http.StatusServiceUnavailable)
			}))
			t.Cleanup(srv.Close)
			row = Row{Host: name, Behind: -1, Err: "503 Service Unavailable: agent not ready"}
		case i == 9: // not a status at all
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, "<html>hello</html>")
			}))
			t.Cleanup(srv.Close)
			row = Row{Host: name, Behind: -1, Err: "decoding status"}
		case i == 12: // nothing deployed yet
			srv = serveStatus(t, status.Status{State: status.Fetching})
			row.State = status.Fetching
		case i == 14: // failed build, runs an older commit
			srv = serveStatus(t, running(ids["c2"], status.Failed, "building nixosConfigurations.host14: builder for '/nix/store/abc-foo.drv' failed with exit code 1", false))
			row.Commit, row.Behind, row.State = ids["c2"], 4, status.Failed
			row.LastError = "building nixosConfigurations.host14: builder for '/nix/store/abc-foo.drv' failed with exit code 1"
		case i == 15: // testing branch deployed
			srv = serveStatus(t, running(ids["side"], status.Idle, "", true))
			row.Commit, row.Behind, row.RebootNeeded = ids["side"], 3, true
		case i == 16: // a commit this clone does not have
			srv = serveStatus(t, running("0123456789abcdef0123456789abcdef01234567", status.Idle, "", false))
			row.Commit = "0123456789abcdef0123456789abcdef01234567"
		default: // c6 (main) for most, c4/c5 for some
			c := []string{"c6", "c6", "c5", "c4"}[i%4]
			srv = serveStatus(t, running(ids[c], status.Idle, "", false))
			row.Commit, row.Behind = ids[c], map[string]int{"c6": 0, "c5": 1, "c4": 2}[c]
		}
		row.Address = srv.URL
		hosts = append(hosts, Host{Name: name, Address: srv.URL})
		want = append(want, row)
	}
	return hosts, want
}

// checkRows compares rows, requiring each Err to contain the wanted text.
func checkRows(t *testing.T, got, want []Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows; want %d", len(got), len(want))
	}
	for i := range want {
		if !strings.Contains(got[i].Err, want[i].Err) || (want[i].Err == "") != (got[i].Err == "") {
			t.Errorf("row %s: Err = %q; want it to contain %q", want[i].Host, got[i].Err, want[i].Err)
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Row{}, "Err")); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestQueryTwentyHosts(t *testing.T) {
	dir, ids := gitRepo(t)
	h, err := openHistory(dir, "main")
	if err != nil {
		t.Fatalf("openHistory(%q) = %v", dir, err)
	}
	hosts, want := fleet20(t, ids)
	start := time.Now()
	got := Query(context.Background(), hosts, Options{Timeout: 500 * time.Millisecond, MainCommit: h.main.String(), Behind: h.Behind})
	// Hosts are asked at once: the hanging one costs one timeout, not more.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Query of 20 hosts took %v; want about one timeout (500ms)", d)
	}
	checkRows(t, got, want)
}

func TestQueryAddressFromName(t *testing.T) {
	tests := []struct {
		host Host
		o    Options
		want string
	}{
		{Host{Name: "eagle"}, Options{}, "http://eagle:9123"},
		{Host{Name: "eagle"}, Options{Port: 9200, Domain: "tail1234.ts.net"}, "http://eagle.tail1234.ts.net:9200"},
		{Host{Name: "eagle", Address: "http://100.64.0.1:80/"}, Options{Domain: "x"}, "http://100.64.0.1:80"},
	}
	for _, tt := range tests {
		if got := tt.o.withDefaults().address(tt.host); got != tt.want {
			t.Errorf("address(%+v) with %+v = %q; want %q", tt.host, tt.o, got, tt.want)
		}
	}
}

func TestBehind(t *testing.T) {
	dir, ids := gitRepo(t)
	h, err := openHistory(dir, "main")
	if err != nil {
		t.Fatalf("openHistory(%q) = %v", dir, err)
	}
	tests := []struct {
		commit  string
		want    int
		wantErr bool
	}{
		{ids["c6"], 0, false},
		{ids["c1"], 5, false},
		{ids["c4"], 2, false},
		{ids["side"], 3, false},
		{"0123456789abcdef0123456789abcdef01234567", 0, true},
		{"not-a-commit", 0, true},
	}
	for _, tt := range tests {
		for range 2 { // the second answer comes from the cache
			got, err := h.Behind(tt.commit)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("Behind(%q) = %d, %v; want %d, error %v", tt.commit, got, err, tt.want, tt.wantErr)
			}
		}
	}
	// The remote-tracking branch is what was pushed; it wins over local main.
	cmd := exec.Command("git", "update-ref", "refs/remotes/origin/main", ids["c5"])
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git update-ref: %v: %s", err, out)
	}
	h, err = openHistory(dir, "main")
	if err != nil {
		t.Fatalf("openHistory(%q) = %v", dir, err)
	}
	if got, err := h.Behind(ids["c1"]); err != nil || got != 4 {
		t.Errorf("Behind(c1) against origin/main = %d, %v; want 4", got, err)
	}
	if _, err := openHistory(dir, "nosuch"); err == nil {
		t.Errorf("openHistory(%q, nosuch) = nil error; want one", dir)
	}
}
