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
	"time"
)

// CommitStatus is a status as the forge shows it: the last one set for
// its context, with when the forge recorded it.
type CommitStatus struct {
	Status
	// ID grows with every status the forge records.
	ID      int64
	Created time.Time
	Updated time.Time
}

// pageSize asks for as many statuses per page as every flavour allows:
// Gitea and Forgejo take limit (at most 50 by default), GitHub per_page
// (at most 100).
const pageSize = 50

// maxPages bounds how many pages Latest reads: 500 contexts.
const maxPages = 10

// Latest returns the latest status of every context on commit sha (the
// forges' combined status: GET .../commits/{sha}/status), reading every
// page. It needs only read access to the repository.
func (c *Client) Latest(ctx context.Context, sha string) ([]CommitStatus, error) {
	if !shaRE.MatchString(sha) {
		return nil, fmt.Errorf("commit %q is not a full commit id: %w", sha, ErrRejected)
	}
	if err := CheckRepository(c.Repository); err != nil {
		return nil, fmt.Errorf("repository: %w: %w", err, ErrRejected)
	}
	var all []CommitStatus
	for page := 1; page <= maxPages; page++ {
		got, total, err := c.latestPage(ctx, sha, page)
		if err != nil {
			return nil, err
		}
		all = append(all, got...)
		if len(got) < pageSize || (total > 0 && len(all) >= total) {
			break
		}
	}
	return all, nil
}

// wireStatus decodes both flavours: Gitea and Forgejo call the state
// "status", GitHub "state".
type wireStatus struct {
	ID          int64     `json:"id"`
	State       State     `json:"state"`
	Status      State     `json:"status"`
	TargetURL   string    `json:"target_url"`
	Description string    `json:"description"`
	Context     string    `json:"context"`
	Created     time.Time `json:"created_at"`
	Updated     time.Time `json:"updated_at"`
}

func (c *Client) latestPage(ctx context.Context, sha string, page int) ([]CommitStatus, int, error) {
	q := url.Values{"page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(pageSize)}, "per_page": {strconv.Itoa(pageSize)}}
	u := c.Endpoint.API + "/repos/" + c.Repository + "/commits/" + sha + "/status?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", err, ErrRejected)
	}
	c.authorize(req)
	resp, err := c.httpClient().Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading statuses from %s: %w: %w", c.Endpoint.API, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxListBody))
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("reading statuses from %s: %w", c.Endpoint.API, answerError(resp, body))
	}
	var combined struct {
		TotalCount int          `json:"total_count"`
		Statuses   []wireStatus `json:"statuses"`
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, 0, nil // Gitea before 1.21 answers no status with an empty 200
	}
	if err := json.Unmarshal(body, &combined); err != nil {
		return nil, 0, fmt.Errorf("reading statuses from %s: decoding the answer: %w: %w", c.Endpoint.API, ErrUnavailable, err)
	}
	// Forgejo and Gitea count the page in total_count and every context
	// in X-Total-Count; GitHub counts every context in total_count.
	if n, err := strconv.Atoi(resp.Header.Get("X-Total-Count")); err == nil {
		combined.TotalCount = n
	}
	out := make([]CommitStatus, len(combined.Statuses))
	for i, w := range combined.Statuses {
		st := w.State
		if st == "" {
			st = w.Status
		}
		out[i] = CommitStatus{ID: w.ID, Created: w.Created, Updated: w.Updated,
			Status: Status{State: st, TargetURL: w.TargetURL, Description: w.Description, Context: w.Context}}
	}
	return out, combined.TotalCount, nil
}

// maxListBody bounds one page of statuses (50 statuses of a few hundred
// bytes each, with their creators).
const maxListBody = 1 << 20

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient == nil {
		return http.DefaultClient
	}
	return c.HTTPClient
}

// authorize sets the flavour's headers and the token.
func (c *Client) authorize(req *http.Request) {
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	switch c.Endpoint.Flavour {
	case GitHub:
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
		req.Header.Set("Authorization", "Bearer "+c.Token)
	default:
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "token "+c.Token)
	}
}
