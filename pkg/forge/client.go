package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Error classes; every error CreateStatus returns wraps one of them.
var (
	// ErrUnavailable: the forge could not be reached, timed out, or
	// answered 5xx, 408 or 429. Try again later.
	ErrUnavailable = errors.New("forge unavailable")
	// ErrUnauthorized: the forge refused the token (401, 403). Trying
	// again helps once the token (file) is fixed.
	ErrUnauthorized = errors.New("token refused")
	// ErrRejected: the forge refused the request itself (another 4xx,
	// such as a commit or repository it does not know). It will not
	// succeed unchanged.
	ErrRejected = errors.New("request rejected")
)

// HTTPError is an answer other than 201 Created.
type HTTPError struct {
	Code int
	// Message is the forge's own message (its JSON "message"), or the
	// start of the body.
	Message string
	// RetryAfter is the wait a Retry-After header asked for, 0 if none.
	RetryAfter time.Duration
	class      error
}

func (e *HTTPError) Error() string {
	s := strconv.Itoa(e.Code) + " " + http.StatusText(e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns the error's class.
func (e *HTTPError) Unwrap() error { return e.class }

// Client creates commit statuses. Set the fields before use.
type Client struct {
	Endpoint Endpoint
	// Repository is owner/name.
	Repository string
	// Token authenticates; it is sent only in the Authorization header.
	Token string
	// HTTPClient makes the requests; http.DefaultClient when nil.
	HTTPClient *http.Client
	// UserAgent names the caller (GitHub requires one).
	UserAgent string
}

// maxBody bounds what is read of an answer.
const maxBody = 64 << 10

// CreateStatus sets status s on commit sha. It succeeds only on 201.
func (c *Client) CreateStatus(ctx context.Context, sha string, s Status) error {
	req, err := c.request(ctx, sha, s)
	if err != nil {
		return err
	}
	resp, err := c.httpClient().Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // it repeats the URL, which the context names already
	}
	if err != nil {
		return fmt.Errorf("posting status to %s: %w: %w", c.Endpoint.API, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode == http.StatusCreated {
		return nil
	}
	he := answerError(resp, body)
	if he.Code == http.StatusInternalServerError && c.Endpoint.Flavour == Gitea {
		if missing := c.missingCommit(ctx, sha); missing != nil {
			return fmt.Errorf("posting status to %s: %s; the commit: %w", c.Endpoint.API, he, missing)
		}
	}
	return fmt.Errorf("posting status to %s: %w", c.Endpoint.API, he)
}

// missingCommit tells a commit the forge does not have from trouble of
// the forge's own. Gitea and Forgejo answer a status for an unknown commit
// with a bare 500, as they answer a broken database, so that 500 alone
// would have the status retried for ever, holding up every status queued
// after it; their commit endpoint answers 404 for an unknown commit. It
// returns that 404 (ErrRejected), or nil when the commit is there or the
// forge cannot tell.
func (c *Client) missingCommit(ctx context.Context, sha string) *HTTPError {
	u := c.Endpoint.API + "/repos/" + c.Repository + "/git/commits/" + sha + "?stat=false&verification=false&files=false"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil
	}
	c.authorize(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != http.StatusNotFound {
		return nil
	}
	return answerError(resp, body)
}

func (c *Client) request(ctx context.Context, sha string, s Status) (*http.Request, error) {
	if !s.State.Valid() {
		return nil, fmt.Errorf("status state %q: %w", s.State, ErrRejected)
	}
	if !shaRE.MatchString(sha) {
		return nil, fmt.Errorf("commit %q is not a full commit id: %w", sha, ErrRejected)
	}
	if err := CheckRepository(c.Repository); err != nil {
		return nil, fmt.Errorf("repository: %w: %w", err, ErrRejected)
	}
	s.Description = Elide(s.Description, MaxDescription)
	body, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint.API+StatusPath(c.Repository, sha), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrRejected)
	}
	req.Header.Set("Content-Type", "application/json")
	c.authorize(req)
	return req, nil
}

// answerError classifies an answer other than 201.
func answerError(resp *http.Response, body []byte) *HTTPError {
	e := &HTTPError{Code: resp.StatusCode, Message: message(body), class: ErrRejected}
	switch {
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		e.class = ErrUnavailable
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		e.class = ErrUnauthorized
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}

// message is the "message" of a JSON error body (Gitea, Forgejo and
// GitHub all send one), else the start of the body on one line.
func message(body []byte) string {
	var m struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(body, &m) == nil && m.Message != nil {
		return Shorten(*m.Message, 200) // Gitea's 500s say "" to all but administrators
	}
	return Shorten(string(body), 200)
}

// Shorten folds s onto one line and cuts it to at most n characters,
// ending in "…" when cut.
func Shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Elide folds s onto one line and, when it is longer than n characters,
// keeps its start and its end around " … ": what failed is said first,
// and the last words of an error are often its cause.
func Elide(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n || n < 10 {
		return Shorten(s, n)
	}
	head := (n - 3) * 2 / 5
	tail := n - 3 - head
	return string(r[:head]) + " … " + string(r[len(r)-tail:])
}
