package hetzner

import (
	"context"
	"fmt"
	"strings"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
)

// Step is one mutating API call of a plan.
type Step struct {
	Method  string // HTTP method, e.g. "POST"
	Path    string // API path; "{id}" stands for an ID not known before Apply
	Summary string // what the call does, for people

	run func(ctx context.Context, c *Client, st *state) error
}

// Plan is the ordered list of mutating calls an operation needs. An empty
// plan means the cloud already matches.
type Plan struct {
	Title string // e.g. `provision exit node "avalanche-exit-node"`
	Steps []Step

	st *state
}

// state carries resources between steps: those found while planning and
// those created by earlier steps.
type state struct {
	key      *hcloud.SSHKey
	firewall *hcloud.Firewall
	server   *hcloud.Server
}

// Empty reports whether the plan has nothing to do.
func (p Plan) Empty() bool { return len(p.Steps) == 0 }

// String renders the plan as a numbered list of API calls.
func (p Plan) String() string {
	var b strings.Builder
	if p.Empty() {
		fmt.Fprintf(&b, "%s: nothing to do\n", p.Title)
		return b.String()
	}
	fmt.Fprintf(&b, "%s: %d API call(s)\n", p.Title, len(p.Steps))
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "  %d. %-6s %-42s %s\n", i+1, s.Method, s.Path, s.Summary)
	}
	return b.String()
}

// Apply performs the plan's steps in order and stops at the first failure;
// the error names the step. Running the operation again re-plans from what
// exists, so a partial apply is completed by the next run.
func (c *Client) Apply(ctx context.Context, p Plan) error {
	st := p.st
	if st == nil {
		st = &state{}
	}
	for i, s := range p.Steps {
		if err := s.run(ctx, c, st); err != nil {
			return fmt.Errorf("step %d (%s %s): %w", i+1, s.Method, s.Path, err)
		}
	}
	return nil
}
