// Package forgetest is a fake Gitea/Forgejo commit-status API for tests,
// checked against a real Gitea 1.27.3 (the fleet runs Forgejo, which
// inherited this API from Gitea; the Go module proxy serves no Forgejo):
// TestConformance (conformance_test.go, cases_test.go) sends one table of
// requests to both, the real one started by pkg/forge/giteatest from the
// binary .ci/gitea builds, and wants the same answers. Re-run it with
//
//	go test -run TestConformance ./pkg/forge/forgetest/
//
// (AVALANCHE_GITEA_VERSION=vX.Y.Z .ci/gitea builds another version; point
// AVALANCHE_GITEA_DIR at the directory it prints).
//
// It serves POST /api/v1/repos/{owner}/{repo}/statuses/{sha} (create.go),
// GET /api/v1/repos/{owner}/{repo}/commits/{ref}/status, the combined
// status (combined.go), and GET .../git/commits/{sha} as far as telling
// whether the forge has a commit. The repository is private; a token is
// sent as "Authorization: token …" or "Bearer …". Where they differ, the
// fake follows Gitea: on an unknown commit's combined status Forgejo's
// source answers an empty 200 where Gitea answers 404, and its combined
// state is the worst state where Gitea's makes error and warning
// "failure". Not modelled: the Link header, basic authentication, other
// endpoints. Commits are looked up in a real git repository. Tests can
// make it answer 5xx, or stop listening and come back on the same address.
package forgetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// Received is a status the server accepted (201).
type Received struct {
	// SHA is the commit's full id (a short one in the request is
	// resolved, as Gitea does).
	SHA string
	// Status is as stored: context, description and target URL trimmed.
	Status forge.Status
	// ID is the forge's id for it: 1, 2, … for each commit.
	ID int64
	// Scheme is how the token came: "token" or "Bearer".
	Scheme string
	Time   time.Time
}

// Server is a fake Forgejo. Its methods are safe for concurrent use.
type Server struct {
	// URL is the forge's base URL (the API is under URL/api/v1).
	URL string
	// Repository is the owner/name it knows.
	Repository string

	token, readOnlyToken string
	gitDir               string
	addr                 string

	mu       sync.Mutex
	srv      *httptest.Server
	received []Received
	attempts int
	failures []failure // answers to give next, in order
}

// failure is an injected answer, for any request or for one state only.
type failure struct {
	code  int
	state forge.State // "": any request
}

// Start serves repository (owner/name) whose commits live in the git
// repository gitDir, accepting token. It stops when t ends.
func Start(t testing.TB, repository, gitDir, token string) *Server {
	t.Helper()
	s := &Server{Repository: repository, gitDir: gitDir, token: token, readOnlyToken: "read-only-" + token}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.URL = "http://" + s.addr
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(ln net.Listener) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// ReadOnlyToken is a valid token without the write:repository scope.
func (s *Server) ReadOnlyToken() string { return s.readOnlyToken }

// Stop closes the listener: the forge is unreachable (connection refused).
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

// Restart listens again on the same address after Stop.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// Fail makes the next requests, one per code, answer these status codes
// (say 500, 502, 503) with Gitea's JSON error body, before any check.
// Every request counts in Attempts. The commit look-up a client makes
// after a 500 (GET .../git/commits/{sha}) is neither failed nor counted.
func (s *Server) Fail(codes ...int) { s.FailState("", codes...) }

// FailState is Fail for the requests that set state only: the others are
// answered as usual, and keep nothing from the list.
func (s *Server) FailState(state forge.State, codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range codes {
		s.failures = append(s.failures, failure{code: c, state: state})
	}
}

// injected takes the next injected answer that applies to a request
// setting state, 0 if none.
func (s *Server) injected(state forge.State) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	for i, f := range s.failures {
		if f.state == "" || f.state == state {
			s.failures = append(s.failures[:i], s.failures[i+1:]...)
			return f.code
		}
	}
	return 0
}

// Received returns the statuses accepted so far, in order.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// Attempts counts every request but commit look-ups, answered 201 or not.
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Wait returns the accepted statuses once there are at least n, failing t
// after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.Received()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("forge received %d statuses within %v; want %d: %v", len(got), timeout, n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	var peek forge.Status
	json.Unmarshal(body, &peek)
	owner, repo, route, ref, ok := splitRoute(r.URL.Path)
	if route != "git" {
		if code := s.injected(peek.State); code != 0 {
			s.apiError(w, code, "injected failure")
			return
		}
	}
	switch {
	case !ok || (route == "commits" && r.Method != http.MethodGet):
		http.NotFound(w, r) // Gitea's router: text/plain "404 page not found"
	case route == "statuses" && r.Method != http.MethodPost:
		// Gitea's router: no body, an Allow header per method, in no
		// fixed order.
		w.Header().Add("Allow", "GET")
		w.Header().Add("Allow", "POST")
		w.WriteHeader(http.StatusMethodNotAllowed)
	case route == "statuses":
		s.create(w, r, owner+"/"+repo, ref)
	case route == "commits":
		s.combined(w, r, owner+"/"+repo, ref)
	default:
		s.commit(w, r, owner+"/"+repo, ref)
	}
}

// splitRoute matches the three routes the fake serves:
// /api/v1/repos/{owner}/{repo}/statuses/{sha} ("statuses"),
// /api/v1/repos/{owner}/{repo}/commits/{ref}/status ("commits") and
// /api/v1/repos/{owner}/{repo}/git/commits/{sha} ("git").
func splitRoute(path string) (owner, repo, route, ref string, ok bool) {
	rest, found := strings.CutPrefix(path, "/api/v1/repos/")
	parts := strings.Split(rest, "/")
	if !found || len(parts) < 4 || parts[0] == "" || parts[1] == "" {
		return "", "", "", "", false
	}
	owner, repo = parts[0], parts[1]
	switch {
	case len(parts) == 4 && parts[2] == "statuses" && parts[3] != "":
		return owner, repo, "statuses", parts[3], true
	case len(parts) == 5 && parts[2] == "commits" && parts[3] != "" && parts[4] == "status":
		return owner, repo, "commits", parts[3], true
	case len(parts) == 5 && parts[2] == "git" && parts[3] == "commits" && parts[4] != "":
		return owner, repo, "git", parts[4], true
	}
	return "", "", "", "", false
}

// apiError answers like Gitea's APIContext.APIError: JSON with message and url.
func (s *Server) apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"message": msg, "url": s.URL + "/api/swagger"})
}
