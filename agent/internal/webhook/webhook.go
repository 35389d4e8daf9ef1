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

	"golang.org/x/time/rate"
)

// DefaultMaxBody is the largest accepted payload when Handler.MaxBody is 0.
const DefaultMaxBody = 1 << 20

// DefaultRate and DefaultBurst bound requests when Handler.Limiter is nil.
const (
	DefaultRate  = rate.Limit(1)
	DefaultBurst = 5
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
	// Limiter bounds the requests handled, checked before the body is read;
	// DefaultRate with DefaultBurst when nil.
	Limiter *rate.Limiter

	once    sync.Once
	limiter *rate.Limiter
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

// ServeHTTP answers 202 and triggers a pass for a correctly signed push
// event, 200 for GitHub's ping, 204 for other events; 401 when the
// signature is missing or wrong, 413 when the body is too large, 429 over
// the rate limit, 405 for anything but POST. Only a signed push triggers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST", http.StatusMethodNotAllowed)
		return
	}
	if !h.allow() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
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
	if !h.verify(r.Header, body) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
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

func (h *Handler) allow() bool {
	h.once.Do(func() {
		h.limiter = h.Limiter
		if h.limiter == nil {
			h.limiter = rate.NewLimiter(DefaultRate, DefaultBurst)
		}
	})
	return h.limiter.Allow()
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
// in constant time.
func (h *Handler) verify(hdr http.Header, body []byte) bool {
	for _, s := range signatures {
		v := hdr.Get(s.header)
		if v == "" {
			continue
		}
		hexSum, ok := strings.CutPrefix(v, s.prefix)
		if !ok {
			return false
		}
		got, err := hex.DecodeString(hexSum)
		if err != nil {
			return false
		}
		mac := hmac.New(sha256.New, h.Secret)
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	}
	return false
}

func event(hdr http.Header) string {
	for _, name := range eventHeaders {
		if v := hdr.Get(name); v != "" {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
}
