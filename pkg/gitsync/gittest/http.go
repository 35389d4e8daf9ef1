package gittest

import (
	"crypto/subtle"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// HTTPServer serves one bare repository over git's smart HTTP protocol
// with the real git http-backend, and counts what it served.
type HTTPServer struct {
	// URL is the repository URL, e.g. http://127.0.0.1:1234/repo.git.
	URL string
	// WriteDelay, when set before requests arrive, slows every response
	// write of upload-pack POSTs, so tests can interrupt a transfer.
	WriteDelay time.Duration

	mu       sync.Mutex
	requests []Request
	started  map[string]int // by method
	close    func()
	handler  http.Handler
	addr     string
}

// Close stops the server: the remote becomes unreachable.
func (s *HTTPServer) Close() { s.close() }

// Request records one served request.
type Request struct {
	Method string // GET or POST
	Path   string // URL path and query, e.g. /repo.git/info/refs?service=git-upload-pack
	Status int
	Bytes  int64 // response body bytes
}

// NewHTTPServer serves bareDir on 127.0.0.1 and returns its URL. When
// token is not empty, requests need basic auth with password token.
func NewHTTPServer(t testing.TB, bareDir, token string) string {
	t.Helper()
	return StartHTTPServer(t, bareDir, token).URL
}

// StartHTTPServer is NewHTTPServer returning the server, for counters.
func StartHTTPServer(t testing.TB, bareDir, token string) *HTTPServer {
	t.Helper()
	gitPath := Require(t, "git")
	s := &HTTPServer{}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + filepath.Dir(bareDir),
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + t.TempDir(),
		},
		// Clients hang up mid-transfer on purpose in some tests.
		Logger: log.New(io.Discard, "", 0),
	}
	s.handler = s.wrap(backend, token)
	ts := httptest.NewServer(s.handler)
	t.Cleanup(func() { s.close() })
	s.URL = ts.URL + "/" + filepath.Base(bareDir)
	s.addr = ts.Listener.Addr().String()
	s.close = ts.Close
	return s
}

// Start serves again at the same address after Close: the forge is back.
func (s *HTTPServer) Start(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", s.addr, err)
	}
	ts := httptest.NewUnstartedServer(s.handler)
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	s.close = ts.Close
}

// Requests returns the requests served so far.
func (s *HTTPServer) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests with method were served.
func (s *HTTPServer) Count(method string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method {
			n++
		}
	}
	return n
}

// Started returns how many requests with method have begun, including
// those still being served.
func (s *HTTPServer) Started(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started[method]
}

// Reset forgets the requests served so far.
func (s *HTTPServer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.started = nil
}

func (s *HTTPServer) wrap(next http.Handler, token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.started == nil {
			s.started = map[string]int{}
		}
		s.started[r.Method]++
		s.mu.Unlock()
		rw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		if r.Method == http.MethodPost {
			rw.delay = s.WriteDelay
		}
		if token != "" && !authorized(r, token) {
			rw.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(rw, "authentication required", http.StatusUnauthorized)
		} else {
			next.ServeHTTP(rw, r)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests = append(s.requests, Request{
			Method: r.Method, Path: r.URL.RequestURI(), Status: rw.status, Bytes: rw.n,
		})
	})
}

func authorized(r *http.Request, token string) bool {
	_, pass, ok := r.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(pass), []byte(token)) == 1
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
	delay  time.Duration
}

func (w *countingWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.delay > 0 {
		time.Sleep(w.delay)
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			defer f.Flush()
		}
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}
