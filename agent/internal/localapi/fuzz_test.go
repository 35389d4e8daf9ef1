package localapi_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/avalanche-fleet/avalanche/agent/internal/localapi"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// actingBackend counts every call by name.
type actingBackend struct {
	calls map[string]*atomic.Int32
}

func newActingBackend() *actingBackend {
	b := &actingBackend{calls: map[string]*atomic.Int32{}}
	for _, n := range []string{"sync", "suspend", "resume", "rollback"} {
		b.calls[n] = &atomic.Int32{}
	}
	return b
}

func (b *actingBackend) total() int32 {
	var n int32
	for _, c := range b.calls {
		n += c.Load()
	}
	return n
}

func (b *actingBackend) Status() status.Status       { return status.Status{Hostname: "fuzz"} }
func (b *actingBackend) History() []state.Deployment { return []state.Deployment{{Commit: "c"}} }
func (b *actingBackend) Sync(ctx context.Context, wait, force bool) (status.SyncResult, error) {
	b.calls["sync"].Add(1)
	return status.SyncResult{OK: true}, nil
}
func (b *actingBackend) Suspend(ctx context.Context) error  { b.calls["suspend"].Add(1); return nil }
func (b *actingBackend) Resume(ctx context.Context) error   { b.calls["resume"].Add(1); return nil }
func (b *actingBackend) Rollback(ctx context.Context) error { b.calls["rollback"].Add(1); return nil }

// actions maps each acting route to the Backend call it makes.
var actions = map[string]string{"/v1/sync": "sync", "/v1/suspend": "suspend", "/v1/resume": "resume", "/v1/rollback": "rollback"}

// routeCodes are the answers the route table may give.
var routeCodes = []int{http.StatusOK, http.StatusMovedPermanently, http.StatusTemporaryRedirect,
	http.StatusPermanentRedirect, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed}

// FuzzRoutes sends arbitrary methods, paths and queries to the route table:
// in process without peer credentials (nothing may act), and, as root,
// over the real socket (exactly the POSTed acting route acts).
func FuzzRoutes(f *testing.F) {
	f.Add("GET", "/v1/status", "")
	f.Add("POST", "/v1/sync", "wait=1&force=1")
	f.Add("POST", "/v1//sync", "")
	f.Add("PUT", "/v1/rollback", "")
	f.Add("POST", "/v1/suspend/../resume", "x=%zz")
	f.Add("GET", "/v1/history", ";;&&==")
	f.Add("HEAD", "/", "wait=1")
	inProc := newActingBackend()
	handler := (&localapi.Server{Backend: inProc}).Handler()
	sockBackend, hc := fuzzSocket(f)
	f.Fuzz(func(t *testing.T, method, path, query string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Method, r.URL = method, &url.URL{Path: path, RawQuery: query}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		if !slices.Contains(routeCodes, w.Code) {
			t.Errorf("in process %s %q?%q = %d; want one of %v", method, path, query, w.Code, routeCodes)
		}
		if n := inProc.total(); n != 0 {
			t.Fatalf("in process %s %q?%q reached the backend's actions (%d calls) without credentials", method, path, query, n)
		}
		if hc != nil {
			overSocket(t, hc, sockBackend, method, path, query)
		}
	})
}

// overSocket sends one request as root and checks which action it reached.
func overSocket(t *testing.T, hc *http.Client, b *actingBackend, method, path, query string) {
	req, err := http.NewRequest(method, "http://agent/", nil)
	if err != nil {
		return // not a request a client can send
	}
	if strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return // the client would write it raw into the request line: not HTTP
	}
	req.URL.Path, req.URL.RawQuery = path, query
	before := map[string]int32{}
	for n, c := range b.calls {
		before[n] = c.Load()
	}
	resp, err := hc.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset") {
			t.Fatalf("%s %q?%q over the socket: %v (did a handler panic?)", method, path, query, err)
		}
		return // the client refused to send it
	}
	resp.Body.Close()
	if !slices.Contains(routeCodes, resp.StatusCode) {
		t.Errorf("%s %q?%q = %d; want one of %v", method, path, query, resp.StatusCode, routeCodes)
	}
	for route, name := range actions {
		want := int32(0)
		if method == http.MethodPost && req.URL.Path == route && resp.StatusCode == http.StatusOK {
			want = 1
		}
		if got := b.calls[name].Load() - before[name]; got != want {
			t.Errorf("%s %q?%q (code %d) made %d %s calls; want %d", method, path, query, resp.StatusCode, got, name, want)
		}
	}
	if method == http.MethodPost && actions[req.URL.Path] != "" && resp.StatusCode != http.StatusOK {
		t.Errorf("POST %q as root = %d; want 200", req.URL.Path, resp.StatusCode)
	}
}

// fuzzSocket serves a counting backend on a real socket when the test runs
// as root (so its peer credentials allow acting); otherwise it returns nil.
func fuzzSocket(f *testing.F) (*actingBackend, *http.Client) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	sock := filepath.Join(f.TempDir(), "agent.sock")
	ln, err := localapi.Listen(sock, "")
	if err != nil {
		f.Fatal(err)
	}
	b := newActingBackend()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&localapi.Server{Backend: b}).Serve(ctx, ln) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Errorf("Serve = %v", err)
		}
	})
	hc := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return b, hc
}
