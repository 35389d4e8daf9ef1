package webhook

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// push returns a distinct push body and its Gitea headers with delivery id.
func push(n int, id string) (string, map[string]string) {
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":"%040x"}`, n)
	hdr := gitea("push", sign(secret, body))
	if id != "" {
		hdr["X-Gitea-Delivery"] = id
	}
	return body, hdr
}

// TestForgeriesCannotStarveRealPushes floods the default limiter with bad
// signatures; the forge's next real push must still trigger a pass.
func TestForgeriesCannotStarveRealPushes(t *testing.T) {
	srv, runs := server(t, &Handler{Secret: secret})
	for i := range 200 {
		body, _ := push(i, "")
		code := post(t, srv, body, github("push", sign([]byte("guess"), body)))
		if code != http.StatusUnauthorized {
			t.Fatalf("forged POST %d = %d; want 401", i, code)
		}
	}
	for _, hdr := range []map[string]string{{"X-Gitea-Event": "push"}, gitea("push", "zz")} {
		if code := post(t, srv, payload, hdr); code != http.StatusUnauthorized {
			t.Fatalf("unsigned POST = %d; want 401", code)
		}
	}
	body, hdr := push(1000, "real-1")
	if code := post(t, srv, body, hdr); code != http.StatusAccepted {
		t.Fatalf("real push after a flood of forgeries = %d; want 202", code)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("passes triggered = %d; want 1", n)
	}
}

// TestReplayRefused: a delivery accepted once is refused with 409 while it
// is remembered, whether it comes back under its own id, under a new id
// (the id header is not signed) or its id is reused for another body.
func TestReplayRefused(t *testing.T) {
	h := &Handler{Secret: secret, Limiter: rate.NewLimiter(rate.Inf, 0), ReplayWindow: time.Hour}
	clock := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return clock }
	srv, runs := server(t, h)
	body, hdr := push(1, "d-1")
	if code := post(t, srv, body, hdr); code != http.StatusAccepted {
		t.Fatalf("first delivery = %d; want 202", code)
	}
	fresh := map[string]string{}
	for k, v := range hdr {
		fresh[k] = v
	}
	fresh["X-Gitea-Delivery"] = "d-2"
	other, otherHdr := push(2, "d-1")
	for _, tt := range []struct {
		name string
		body string
		hdr  map[string]string
	}{
		{"same delivery again", body, hdr},
		{"same body under a new delivery id", body, fresh},
		{"known delivery id, other body", other, otherHdr},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(tt.body))
		for k, v := range tt.hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 100)
		n, _ := resp.Body.Read(msg)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(msg[:n]), "replay refused") {
			t.Errorf("%s = %d %q; want 409 replay refused", tt.name, resp.StatusCode, msg[:n])
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("passes triggered = %d; want 1", n)
	}
	clock = clock.Add(time.Hour + time.Second)
	if code := post(t, srv, body, hdr); code != http.StatusAccepted {
		t.Errorf("the delivery after the replay window = %d; want 202", code)
	}
}

// TestRateLimitedDeliveryMayComeAgain: a delivery refused with 429 was not
// accepted, so the forge's retry of it is not a replay.
func TestRateLimitedDeliveryMayComeAgain(t *testing.T) {
	h := &Handler{Secret: secret, Limiter: rate.NewLimiter(rate.Every(time.Hour), 1)}
	srv, runs := server(t, h)
	first, firstHdr := push(1, "d-1")
	if code := post(t, srv, first, firstHdr); code != http.StatusAccepted {
		t.Fatalf("first delivery = %d; want 202", code)
	}
	second, secondHdr := push(2, "d-2")
	if code := post(t, srv, second, secondHdr); code != http.StatusTooManyRequests {
		t.Fatalf("second delivery over the limit = %d; want 429", code)
	}
	h.limiter.SetLimit(rate.Inf) // the budget comes back
	if code := post(t, srv, second, secondHdr); code != http.StatusAccepted {
		t.Errorf("retry of the rate-limited delivery = %d; want 202", code)
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("passes triggered = %d; want 2", n)
	}
}

// TestReplayMemoryBounded: however many deliveries arrive, at most
// MaxDeliveries are remembered, the oldest dropped first.
func TestReplayMemoryBounded(t *testing.T) {
	const max = 64
	h := &Handler{Secret: secret, Limiter: rate.NewLimiter(rate.Inf, 0), MaxDeliveries: max}
	srv, runs := server(t, h)
	for i := range 3 * max {
		body, hdr := push(i, fmt.Sprint("d-", i))
		if code := post(t, srv, body, hdr); code != http.StatusAccepted {
			t.Fatalf("delivery %d = %d; want 202", i, code)
		}
	}
	h.mu.Lock()
	n, keys := h.seen.len(), len(h.seen.keys)
	h.mu.Unlock()
	if n != max || keys != 2*max {
		t.Errorf("remembered %d deliveries under %d keys; want %d under %d", n, keys, max, 2*max)
	}
	newest, newestHdr := push(3*max-1, fmt.Sprint("d-", 3*max-1))
	if code := post(t, srv, newest, newestHdr); code != http.StatusConflict {
		t.Errorf("replay of the newest delivery = %d; want 409", code)
	}
	if got := runs.Load(); got != 3*max {
		t.Errorf("passes triggered = %d; want %d", got, 3*max)
	}
}
