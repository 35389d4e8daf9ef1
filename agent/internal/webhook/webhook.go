// Package webhook turns a signed push notification from Forgejo, Gitea or
// GitHub into a request for an agent pass. It never takes content from the
// payload: the event only says "look now", and the pass fetches and verifies
// the repository as it always does.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxBody is the largest accepted payload when Handler.MaxBody is 0.
const DefaultMaxBody = 1 << 20

// DefaultRate and DefaultBurst bound the authenticated requests handled
// when Handler.Limiter is nil.
const (
	DefaultRate  = rate.Limit(1)
	DefaultBurst = 5
)

// DefaultReplayWindow and DefaultMaxDeliveries bound how long and how many
// accepted deliveries are remembered to refuse replays. At DefaultRate the
// window never holds more than DefaultMaxDeliveries.
const (
	DefaultReplayWindow  = time.Hour
	DefaultMaxDeliveries = 4096
)

// Handler serves the webhook endpoint. Set its fields before the first
// request and do not change them afterwards.
type Handler struct {
	// Secret is the HMAC-SHA256 key shared with the forge. When empty,
	// every request is refused: an empty key would let anyone sign.
	Secret []byte
	// Trigger requests a pass. It must not block and should coalesce
	// requests that arrive while a pass is pending.
	Trigger func()
	// MaxBody bounds the payload size; DefaultMaxBody when 0.
	MaxBody int64
	// Limiter bounds the authenticated requests handled, so that only a
	// holder of the secret can use it up; DefaultRate with DefaultBurst
	// when nil.
	Limiter *rate.Limiter
	// ReplayWindow is how long an accepted delivery is remembered;
	// DefaultReplayWindow when 0.
	ReplayWindow time.Duration
	// MaxDeliveries bounds the deliveries remembered (the oldest go
	// first); DefaultMaxDeliveries when 0.
	MaxDeliveries int

	once    sync.Once
	limiter *rate.Limiter
	now     func() time.Time // time.Now; tests move it

	mu   sync.Mutex
	seen deliveries
}

// signature is one way a forge signs its payload.
type signature struct {
	header string
	prefix string // before the hex digest
}

// signatures in the order they are looked for. Forgejo also sends the Gitea
// header; the first one present must verify.
var signatures = []signature{
	{header: "X-Forgejo-Signature"},
	{header: "X-Gitea-Signature"},
	{header: "X-Hub-Signature-256", prefix: "sha256="},
}

var eventHeaders = []string{"X-Forgejo-Event", "X-Gitea-Event", "X-GitHub-Event"}

// deliveryHeaders carry the forge's id of one delivery; a redelivery from
// the forge's UI keeps it. Forgejo sends its own and Gitea's, equal.
var deliveryHeaders = []string{"X-Forgejo-Delivery", "X-Gitea-Delivery", "X-GitHub-Delivery"}

// ServeHTTP answers 202 and triggers a pass for a correctly signed push
// event, 200 for GitHub's ping, 204 for other events; 401 when the
// signature is missing or wrong, 409 for a delivery already accepted
// within the replay window, 413 when the body is too large, 429 over the
// rate limit, 405 for anything but POST. Only a signed push triggers.
//
// The signature is checked before the rate limit: a flood of unsigned or
// forged requests costs one HMAC each and cannot use up the budget of the
// forge's real deliveries.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST", http.StatusMethodNotAllowed)
		return
	}
	if len(h.Secret) == 0 || h.Trigger == nil {
		http.Error(w, "webhook not configured", http.StatusServiceUnavailable)
		return
	}
	body, code := h.readBody(w, r)
	if code != 0 {
		http.Error(w, http.StatusText(code), code)
		return
	}
	mac, ok := h.verify(r.Header, body)
	if !ok {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	switch h.admit(delivery(r.Header), mac) {
	case admitReplay:
		http.Error(w, "delivery already seen: replay refused", http.StatusConflict)
		return
	case admitLimited:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	switch event(r.Header) {
	case "push":
		h.Trigger()
		w.WriteHeader(http.StatusAccepted)
	case "ping":
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// readBody reads at most MaxBody bytes; a non-zero code says why it failed.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int) {
	max := h.MaxBody
	if max <= 0 {
		max = DefaultMaxBody
	}
	if r.ContentLength > max {
		return nil, http.StatusRequestEntityTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, http.StatusRequestEntityTooLarge
	case err != nil:
		return nil, http.StatusBadRequest
	}
	return body, 0
}

// verify checks the first signature header present against the HMAC of body
// in constant time, and returns the HMAC.
func (h *Handler) verify(hdr http.Header, body []byte) ([]byte, bool) {
	for _, s := range signatures {
		v := hdr.Get(s.header)
		if v == "" {
			continue
		}
		hexSum, ok := strings.CutPrefix(v, s.prefix)
		if !ok {
			return nil, false
		}
		got, err := hex.DecodeString(hexSum)
		if err != nil {
			return nil, false
		}
		mac := hmac.New(sha256.New, h.Secret)
		mac.Write(body)
		sum := mac.Sum(nil)
		return sum, hmac.Equal(got, sum)
	}
	return nil, false
}

func delivery(hdr http.Header) string {
	for _, name := range deliveryHeaders {
		if v := strings.TrimSpace(hdr.Get(name)); v != "" {
			return v
		}
	}
	return ""
}

func event(hdr http.Header) string {
	for _, name := range eventHeaders {
		if v := hdr.Get(name); v != "" {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
}
