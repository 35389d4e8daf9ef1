package forge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Create sets status s on commit sha, as CreateStatus does, and returns
// the status the forge recorded: its id (which grows with every status
// the forge records: Forgejo's and Gitea's commit_status.id, GitHub's id)
// and when it was recorded, read from the 201's body.
func (c *Client) Create(ctx context.Context, sha string, s Status) (CommitStatus, error) {
	req, err := c.request(ctx, sha, s)
	if err != nil {
		return CommitStatus{}, err
	}
	resp, err := c.httpClient().Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if err != nil {
		return CommitStatus{}, fmt.Errorf("posting status to %s: %w: %w", c.Endpoint.API, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != http.StatusCreated {
		return CommitStatus{}, fmt.Errorf("posting status to %s: %w", c.Endpoint.API, answerError(resp, body))
	}
	var w wireStatus
	if err := json.Unmarshal(body, &w); err != nil || w.ID == 0 {
		// Created, but the answer does not say as what: the caller cannot
		// know its place, and must ask again.
		return CommitStatus{}, fmt.Errorf("posting status to %s: the 201's body has no status id (%v): %w", c.Endpoint.API, err, ErrUnavailable)
	}
	st := w.State
	if st == "" {
		st = w.Status
	}
	return CommitStatus{ID: w.ID, Created: w.Created, Updated: w.Updated,
		Status: Status{State: st, TargetURL: w.TargetURL, Description: w.Description, Context: w.Context}}, nil
}
