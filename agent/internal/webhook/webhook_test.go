package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

var secret = []byte("s3cret-shared-with-the-forge")

const payload = `{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}`

func sign(key []byte, body string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

// server serves h over real HTTP and counts the passes it triggers.
func server(t *testing.T, h *Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	h.Trigger = func() { n.Add(1) }
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, &n
}

func post(t *testing.T, srv *httptest.Server, body string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhook", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", srv.URL, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Headers as each forge sends them for a push of payload.
func forgejo(event, sig string) map[string]string {
	return map[string]string{"X-Forgejo-Event": event, "X-Forgejo-Signature": sig, "X-Gitea-Event": event, "X-Gitea-Signature": sig}
}

func gitea(event, sig string) map[string]string {
	return map[string]string{"X-Gitea-Event": event, "X-Gitea-Signature": sig}
}

func github(event, sig string) map[string]string {
	return map[string]string{"X-GitHub-Event": event, "X-Hub-Signature-256": "sha256=" + sig}
}

func TestServeHTTP(t *testing.T) {
	good := sign(secret, payload)
	bad := sign([]byte("not the secret"), payload)
	tests := []struct {
		name     string
		body     string
		hdr      map[string]string
		wantCode int
		wantRuns int64
	}{
		{"forgejo push", payload, forgejo("push", good), http.StatusAccepted, 1},
		{"gitea push", payload, gitea("push", good), http.StatusAccepted, 1},
		{"github push", payload, github("push", good), http.StatusAccepted, 1},
		{"github ping", payload, github("ping", good), http.StatusOK, 0},
		{"gitea issue event", payload, gitea("issues", good), http.StatusNoContent, 0},
		{"no event header", payload, map[string]string{"X-Gitea-Signature": good}, http.StatusNoContent, 0},
		{"forgejo wrong key", payload, forgejo("push", bad), http.StatusUnauthorized, 0},
		{"gitea wrong key", payload, gitea("push", bad), http.StatusUnauthorized, 0},
		{"github wrong key", payload, github("push", bad), http.StatusUnauthorized, 0},
		{"github without sha256= prefix", payload, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": good}, http.StatusUnauthorized, 0},
		{"signature not hex", payload, gitea("push", "zz"+good[2:]), http.StatusUnauthorized, 0},
		{"missing signature", payload, map[string]string{"X-Gitea-Event": "push"}, http.StatusUnauthorized, 0},
		{"body changed after signing", payload + " ", gitea("push", good), http.StatusUnauthorized, 0},
		{"truncated signature", payload, gitea("push", good[:32]), http.StatusUnauthorized, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, runs := server(t, &Handler{Secret: secret})
			if got := post(t, srv, tt.body, tt.hdr); got != tt.wantCode {
				t.Errorf("POST = %d; want %d", got, tt.wantCode)
			}
			if got := runs.Load(); got != tt.wantRuns {
				t.Errorf("passes triggered = %d; want %d", got, tt.wantRuns)
			}
		})
	}
}

func TestOnlyPost(t *testing.T) {
	srv, runs := server(t, &Handler{Secret: secret})
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodHead} {
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader(payload))
		req.Header.Set("X-Gitea-Event", "push")
		req.Header.Set("X-Gitea-Signature", sign(secret, payload))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s = %d; want 405", method, resp.StatusCode)
		}
	}
	if n := runs.Load(); n != 0 {
		t.Errorf("passes triggered = %d; want 0", n)
	}
}

func TestEmptySecretRefusesEverything(t *testing.T) {
	srv, runs := server(t, &Handler{})
	// With an empty key anybody can compute the HMAC; it must not count.
	if got := post(t, srv, payload, gitea("push", sign(nil, payload))); got != http.StatusServiceUnavailable {
		t.Errorf("POST with empty secret = %d; want 503", got)
	}
	if n := runs.Load(); n != 0 {
		t.Errorf("passes triggered = %d; want 0", n)
	}
}

func TestOversizedBody(t *testing.T) {
	big := `{"pad":"` + strings.Repeat("x", 2048) + `"}`
	sig := sign(secret, big)
	srv, runs := server(t, &Handler{Secret: secret, MaxBody: 1024})
	if got := post(t, srv, big, github("push", sig)); got != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of %d bytes = %d; want 413", len(big), got)
	}
	// Without Content-Length (chunked), the limit still holds while reading.
	req, _ := http.NewRequest(http.MethodPost, srv.URL, struct{ *strings.Reader }{strings.NewReader(big)})
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.ContentLength != -1 && req.ContentLength != 0 {
		t.Fatalf("request has Content-Length %d; the test wants a chunked body", req.ContentLength)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked POST of %d bytes = %d; want 413", len(big), resp.StatusCode)
	}
	if n := runs.Load(); n != 0 {
		t.Errorf("passes triggered = %d; want 0", n)
	}
}

func TestDefaultMaxBody(t *testing.T) {
	srv, runs := server(t, &Handler{Secret: secret})
	ok := `{"pad":"` + strings.Repeat("x", DefaultMaxBody-100) + `"}`
	if got := post(t, srv, ok, gitea("push", sign(secret, ok))); got != http.StatusAccepted {
		t.Errorf("POST just under 1 MiB = %d; want 202", got)
	}
	big := ok + strings.Repeat(" ", 200)
	if got := post(t, srv, big, gitea("push", sign(secret, big))); got != http.StatusRequestEntityTooLarge {
		t.Errorf("POST just over 1 MiB = %d; want 413", got)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("passes triggered = %d; want 1", n)
	}
}

// TestFlood sends 1,000 distinct, validly signed pushes as fast as 16
// clients can; the limiter must bound the passes triggered by its burst plus
// its rate over the time the flood took.
func TestFlood(t *testing.T) {
	const requests, workers, burst = 1000, 16, 5
	limit := rate.Limit(2)
	srv, runs := server(t, &Handler{Secret: secret, Limiter: rate.NewLimiter(limit, burst)})
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan int)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				body := fmt.Sprintf(`{"ref":"refs/heads/main","after":"%040x"}`, i)
				req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte(body)))
				for k, v := range forgejo("push", sign(secret, body)) {
					req.Header.Set(k, v)
				}
				req.Header.Set("X-Forgejo-Delivery", fmt.Sprint("delivery-", i))
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Errorf("POST: %v", err)
					continue
				}
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	for i := range requests {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)

	bound := int64(burst + int(float64(limit)*elapsed.Seconds()) + 1)
	got := runs.Load()
	t.Logf("%d requests in %v: %v; %d passes triggered (bound %d)", requests, elapsed, codes, got, bound)
	if got < 1 || got > bound {
		t.Errorf("passes triggered by a flood = %d; want between 1 and %d", got, bound)
	}
	if codes[http.StatusAccepted] != int(got) {
		t.Errorf("202 answers = %d; want one per pass triggered (%d)", codes[http.StatusAccepted], got)
	}
	if codes[http.StatusTooManyRequests] != requests-int(got) {
		t.Errorf("429 answers = %d; want %d", codes[http.StatusTooManyRequests], requests-int(got))
	}
}

// TestFloodOfForgeries checks that invalid requests never trigger, whether
// they are rate limited or rejected for their signature.
func TestFloodOfForgeries(t *testing.T) {
	srv, runs := server(t, &Handler{Secret: secret, Limiter: rate.NewLimiter(rate.Inf, 0)})
	for i := range 200 {
		body := payload + strings.Repeat(" ", i)
		if got := post(t, srv, body, github("push", sign([]byte("guess"), body))); got != http.StatusUnauthorized {
			t.Fatalf("forged POST %d = %d; want 401", i, got)
		}
	}
	if n := runs.Load(); n != 0 {
		t.Errorf("passes triggered by forgeries = %d; want 0", n)
	}
}
