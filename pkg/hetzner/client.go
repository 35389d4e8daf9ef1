// Package hetzner provisions and maintains the fleet's Hetzner Cloud exit
// node: an SSH key, a firewall that admits SSH only from the home's public
// IP (plus Tailscale's UDP port from anywhere), and the server itself.
//
// Every operation is split into a Plan, computed from read-only API calls,
// and Apply, which performs the plan's mutating calls in order. Dry runs
// print the plan; real runs apply the same plan, so both share one code
// path. Plans are idempotent: when the cloud already matches the spec the
// plan is empty. Resources carry the label managed-by=avalanche and the
// package refuses to touch a same-named resource without it.
// The package never logs.
package hetzner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
)

// LabelKey and LabelValue mark the resources this package owns.
const (
	LabelKey   = "managed-by"
	LabelValue = "avalanche"
)

// Options tunes NewClient; the zero value talks to the real API.
type Options struct {
	Endpoint     string        // API endpoint; "" means Hetzner's
	HTTPClient   *http.Client  // its Transport is wrapped; nil means a default client
	PollInterval time.Duration // how often to poll running actions; 0 means 500ms
	// MaxRetryAfter caps how long one 429 Retry-After wait may be; 0 means 60s.
	// A longer Retry-After fails the call instead of waiting.
	MaxRetryAfter time.Duration
}

// Client performs the exit node's cloud operations.
type Client struct {
	api *hcloud.Client
}

// NewClient returns a client authenticated with token.
//
// Rate limiting (HTTP 429) is retried up to three times, honouring
// Retry-After: the API rejected the request without acting on it, so even
// a POST is safe to resend. Other failures are returned as they are; every
// operation is idempotent, so the caller simply runs it again.
func NewClient(token string, o Options) *Client {
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	wrapped := *hc
	wrapped.Transport = &retryAfter{base: hc.Transport, max: o.MaxRetryAfter}
	poll := o.PollInterval
	if poll == 0 {
		poll = 500 * time.Millisecond
	}
	opts := []hcloud.ClientOption{
		hcloud.WithToken(strings.TrimSpace(token)),
		hcloud.WithHTTPClient(&wrapped),
		hcloud.WithApplication("avalanche", ""),
		hcloud.WithPollOpts(hcloud.PollOpts{BackoffFunc: hcloud.ConstantBackoff(poll)}),
		hcloud.WithRetryOpts(hcloud.RetryOpts{MaxRetries: 0}),
	}
	if o.Endpoint != "" {
		opts = append(opts, hcloud.WithEndpoint(o.Endpoint))
	}
	return &Client{api: hcloud.NewClient(opts...)}
}

// retryAfter resends requests answered with 429 Too Many Requests.
type retryAfter struct {
	base http.RoundTripper
	max  time.Duration
}

const maxRateLimitRetries = 3

func (t *retryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	for attempt := 0; ; attempt++ {
		resp, err := base.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || attempt == maxRateLimitRetries {
			return resp, err
		}
		wait, ok := t.wait(resp.Header.Get("Retry-After"))
		if !ok {
			return resp, nil
		}
		if req, err = rewind(req); err != nil {
			return resp, nil
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(wait):
		}
	}
}

// wait parses Retry-After (seconds or an HTTP date); without the header it
// waits one second.
func (t *retryAfter) wait(h string) (time.Duration, bool) {
	limit := t.max
	if limit == 0 {
		limit = time.Minute
	}
	d := time.Second
	if h != "" {
		if secs, err := strconv.Atoi(h); err == nil {
			d = time.Duration(secs) * time.Second
		} else if at, err := http.ParseTime(h); err == nil {
			d = time.Until(at)
		} else {
			return 0, false
		}
	}
	return max(d, 0), d <= limit
}

func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("request body cannot be replayed")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = body
	return r, nil
}

func managed(labels map[string]string) bool { return labels[LabelKey] == LabelValue }

func labels() map[string]string { return map[string]string{LabelKey: LabelValue} }

func notManaged(kind, name string) error {
	return fmt.Errorf("%s %q exists but is not labelled %s=%s; refusing to touch it", kind, name, LabelKey, LabelValue)
}

// wait blocks until the actions finish.
func (c *Client) wait(ctx context.Context, actions ...*hcloud.Action) error {
	if err := c.api.Action.WaitFor(ctx, actions...); err != nil {
		return fmt.Errorf("waiting for actions: %w", err)
	}
	return nil
}
