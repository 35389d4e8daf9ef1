package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"golang.org/x/time/rate"
)

// FuzzServeHTTP sends arbitrary methods, events, signature headers and
// bodies. The handler must never panic, answer only documented codes, and
// trigger a pass exactly for a POSTed, correctly signed push.
func FuzzServeHTTP(f *testing.F) {
	f.Add("POST", "push", 0, "", []byte(payload), true)
	f.Add("POST", " Push ", 2, "", []byte(payload), true)
	f.Add("POST", "ping", 2, "sha256=00", []byte(`{}`), false)
	f.Add("GET", "push", 1, "", []byte(payload), true)
	f.Add("POST", "push", 2, "sha1=abcd", []byte(strings.Repeat("x", 5000)), false)
	f.Add("POST", "", 1, "zz", []byte{}, false)
	const maxBody = 4096
	f.Fuzz(func(t *testing.T, method, ev string, header int, sig string, body []byte, signIt bool) {
		triggered := 0
		h := &Handler{Secret: secret, Trigger: func() { triggered++ }, MaxBody: maxBody, Limiter: rate.NewLimiter(rate.Inf, 0)}
		r := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
		r.Method = method
		s := signatures[uint(header)%uint(len(signatures))]
		if signIt {
			sig = s.prefix + sign(secret, string(body))
		}
		r.Header.Set(s.header, sig)
		r.Header.Set(eventHeaders[uint(header)%uint(len(eventHeaders))], ev)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		codes := []int{http.StatusAccepted, http.StatusOK, http.StatusNoContent, http.StatusUnauthorized,
			http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed, http.StatusBadRequest}
		if !slices.Contains(codes, w.Code) {
			t.Errorf("ServeHTTP(%q, event %q) = %d; want one of %v", method, ev, w.Code, codes)
		}
		want := 0
		if method == http.MethodPost && signIt && len(body) <= maxBody && strings.ToLower(strings.TrimSpace(ev)) == "push" {
			want = 1
		}
		if triggered != want {
			t.Errorf("ServeHTTP(%q, event %q, signed %v, %d bytes) triggered %d passes (code %d); want %d",
				method, ev, signIt, len(body), triggered, w.Code, want)
		}
	})
}
