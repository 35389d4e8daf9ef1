package localapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/avalanche-fleet/avalanche/agent/internal/client"
	"github.com/avalanche-fleet/avalanche/agent/internal/localapi"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// socketEnv makes the test binary a local API caller (see callerMain).
const socketEnv = "AVALANCHE_TEST_LOCALAPI_SOCKET"

// nobody is the unprivileged uid and gid the caller runs as.
const nobody = 65534

func TestMain(m *testing.M) {
	if sock := os.Getenv(socketEnv); sock != "" {
		os.Exit(callerMain(sock))
	}
	os.Exit(m.Run())
}

// callResult is what the caller child saw for one request.
type callResult struct {
	Code int    `json:"code"`
	Body string `json:"body"`
	Err  string `json:"err,omitempty"`
}

// callerMain runs in the child: it asks for the status and a sync and
// prints both results as JSON.
func callerMain(sock string) int {
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	res := map[string]callResult{}
	for _, req := range []struct{ method, path string }{{"GET", "/v1/status"}, {"POST", "/v1/sync"}} {
		r, _ := http.NewRequest(req.method, "http://agent"+req.path, nil)
		resp, err := hc.Do(r)
		if err != nil {
			res[req.method+" "+req.path] = callResult{Err: err.Error()}
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res[req.method+" "+req.path] = callResult{Code: resp.StatusCode, Body: string(b)}
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

// backend is a fake daemon that counts the actions it was asked for.
type backend struct {
	syncs atomic.Int32
}

func (b *backend) Status() status.Status       { return status.Status{Hostname: "fake", State: status.Idle} }
func (b *backend) History() []state.Deployment { return nil }
func (b *backend) Sync(ctx context.Context, wait, force bool) (status.SyncResult, error) {
	b.syncs.Add(1)
	return status.SyncResult{Pass: 7, OK: true, Result: "unchanged"}, nil
}
func (b *backend) Suspend(ctx context.Context) error  { return nil }
func (b *backend) Resume(ctx context.Context) error   { return nil }
func (b *backend) Rollback(ctx context.Context) error { return errors.New("nothing to roll back to") }

// serve listens on a socket in a directory every user can traverse and
// serves a fake backend until the test ends.
func serve(t *testing.T, group, operatorGroup string) (sock string, b *backend) {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir makes its directories 0700; the caller runs as nobody.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock = filepath.Join(dir, "agent.sock")
	ln, err := localapi.Listen(sock, group)
	if err != nil {
		t.Fatalf("Listen(%q, %q) = %v", sock, group, err)
	}
	b = &backend{}
	srv := &localapi.Server{Backend: b, OperatorGroup: operatorGroup}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return sock, b
}

// callAsNobody runs a copy of the test binary as uid/gid 65534, without
// supplementary groups, against sock.
func callAsNobody(t *testing.T, sock string) map[string]callResult {
	t.Helper()
	return callAs(t, sock, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}})
}

// callAs runs a copy of the test binary with cred against sock.
func callAs(t *testing.T, sock string, cred *syscall.Credential) map[string]callResult {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test must run as root to start a caller as nobody (.ci/test runs as root)")
	}
	exe := copyTestBinary(t)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Dir = filepath.Dir(exe)
	cmd.Env = append(os.Environ(), socketEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("caller as %+v: %v\n%s", *cred, err, stderr.String())
	}
	var res map[string]callResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("caller output %q: %v", out, err)
	}
	return res
}

// copyTestBinary copies the running test binary into a directory nobody
// can read and traverse (the go build cache is not).
func copyTestBinary(t *testing.T) string {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "caller.test")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestNonOperatorMayReadButNotAct(t *testing.T) {
	tests := []struct {
		name          string
		operatorGroup string
	}{
		{"root only", ""},
		{"other operator group", "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock, b := serve(t, fmt.Sprint(nobody), tt.operatorGroup)
			res := callAsNobody(t, sock)
			st := res["GET /v1/status"]
			if st.Code != http.StatusOK || !strings.Contains(st.Body, `"fake"`) {
				t.Errorf("GET /v1/status as nobody = %+v; want 200 with the status", st)
			}
			sy := res["POST /v1/sync"]
			if sy.Code != http.StatusForbidden || !strings.Contains(sy.Body, "permission denied") {
				t.Errorf("POST /v1/sync as nobody = %+v; want 403 permission denied", sy)
			}
			if n := b.syncs.Load(); n != 0 {
				t.Errorf("backend got %d syncs; want 0", n)
			}
		})
	}
}

func TestOperatorGroupMayAct(t *testing.T) {
	sock, b := serve(t, fmt.Sprint(nobody), fmt.Sprint(nobody))
	res := callAsNobody(t, sock)
	if sy := res["POST /v1/sync"]; sy.Code != http.StatusOK || !strings.Contains(sy.Body, `"pass":7`) {
		t.Errorf("POST /v1/sync by an operator = %+v; want 200 with the result", sy)
	}
	if n := b.syncs.Load(); n != 1 {
		t.Errorf("backend got %d syncs; want 1", n)
	}
}

func TestRootMayAct(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test must run as root (.ci/test runs as root)")
	}
	sock, b := serve(t, "", "")
	c := &client.Client{Socket: sock}
	r, err := c.Sync(context.Background(), true, false)
	if err != nil || r.Pass != 7 || r.Result != "unchanged" {
		t.Errorf("Sync as root = %+v, %v; want pass 7 unchanged", r, err)
	}
	if n := b.syncs.Load(); n != 1 {
		t.Errorf("backend got %d syncs; want 1", n)
	}
	if err := c.Rollback(context.Background()); err == nil || !strings.Contains(err.Error(), "nothing to roll back") {
		t.Errorf("Rollback as root = %v; want the backend's error", err)
	}
}

func TestSocketMode(t *testing.T) {
	tests := []struct {
		group string
		want  os.FileMode
		gid   int
	}{
		{"", 0o600, os.Getegid()},
		{fmt.Sprint(nobody), 0o660, nobody},
	}
	for _, tt := range tests {
		t.Run("group="+tt.group, func(t *testing.T) {
			if tt.group != "" && os.Geteuid() != 0 {
				t.Fatal("chown to another group needs root (.ci/test runs as root)")
			}
			sock := filepath.Join(t.TempDir(), "agent.sock")
			// A stale world-writable file in the way is replaced.
			if err := os.WriteFile(sock, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			ln, err := localapi.Listen(sock, tt.group)
			if err != nil {
				t.Fatalf("Listen(%q, %q) = %v", sock, tt.group, err)
			}
			defer ln.Close()
			fi, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != tt.want {
				t.Errorf("socket mode = %v; want socket with %v", fi.Mode(), tt.want)
			}
			if gid := int(fi.Sys().(*syscall.Stat_t).Gid); gid != tt.gid {
				t.Errorf("socket gid = %d; want %d", gid, tt.gid)
			}
		})
	}
}

func TestListenUnknownGroup(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := localapi.Listen(sock, "no-such-group-avalanche")
	if err == nil {
		ln.Close()
		t.Fatalf("Listen(%q, unknown group) = nil; want an error", sock)
	}
	if !strings.Contains(err.Error(), "no-such-group-avalanche") {
		t.Errorf("Listen error = %v; want it to name the group", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after a failed Listen: %v", err)
	}
}

// TestOperatorGroupFromPeerCredentials starts callers with different
// primary and supplementary groups. Gid 4242 is in no /etc/group: only
// the kernel's view of each process can say who belongs to it.
func TestOperatorGroupFromPeerCredentials(t *testing.T) {
	const operators = 4242
	many := make([]uint32, 0, 101)
	for g := uint32(5000); g < 5100; g++ {
		many = append(many, g)
	}
	tests := []struct {
		name    string
		gid     uint32
		groups  []uint32
		mayAct  bool
		wantErr string
	}{
		{"supplementary group", nobody, []uint32{operators}, true, ""},
		{"primary group", operators, []uint32{}, true, ""},
		{"supplementary group after 100 others", nobody, append(many, operators), true, ""},
		{"no groups", nobody, []uint32{}, false, "neither root nor in the operator group"},
		{"neighbouring groups", nobody, []uint32{operators - 1, operators + 1}, false, "[4241 4243]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock, b := serve(t, "", fmt.Sprint(operators))
			// The socket is root's, mode 0600: let the callers in.
			if err := os.Chmod(sock, 0o666); err != nil {
				t.Fatal(err)
			}
			res := callAs(t, sock, &syscall.Credential{Uid: nobody, Gid: tt.gid, Groups: tt.groups})
			sy := res["POST /v1/sync"]
			want := http.StatusForbidden
			if tt.mayAct {
				want = http.StatusOK
			}
			if sy.Code != want || !strings.Contains(sy.Body, tt.wantErr) {
				t.Errorf("POST /v1/sync as gid %d groups %v = %+v; want %d containing %q", tt.gid, tt.groups, sy, want, tt.wantErr)
			}
			if n, want := b.syncs.Load(), map[bool]int32{true: 1}[tt.mayAct]; n != want {
				t.Errorf("backend got %d syncs; want %d", n, want)
			}
		})
	}
}
