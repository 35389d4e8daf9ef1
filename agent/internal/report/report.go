// Package report sends each deployment's outcome to the forge as a commit
// status (context avalanche/<host>), without ever holding a deployment up.
//
// A deployment event only appends to a durable queue in the state directory
// (one atomic file write); a single sender goroutine (Run) posts the queue
// in order, one request at a time, and backs off exponentially while the
// forge cannot be reached. The queue survives restarts and crashes: what
// was not sent is sent by the next agent. A status still queued for the
// same commit is replaced by a newer one (pending by success), and a
// status the forge refuses as it is (an unknown commit) is dropped.
package report

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// Backoff bounds and the request timeout, unless a Reporter sets its own.
const (
	DefaultMinBackoff = 2 * time.Second
	DefaultMaxBackoff = 10 * time.Minute
	DefaultTimeout    = 30 * time.Second
)

// BuilderContext is the status context of the builder role.
const BuilderContext = "avalanche/builder"

// Poster sends one status; *forge.Client is one.
type Poster interface {
	CreateStatus(ctx context.Context, sha string, s forge.Status) error
}

// Reporter queues commit statuses and sends them. Build it with New or set
// the exported fields before Run; its methods are safe for concurrent use.
type Reporter struct {
	// Post sends a status; New reads the token file for every attempt,
	// so a rotated token is picked up without a restart.
	Post func(ctx context.Context, sha string, s forge.Status) error
	// Host names the context, avalanche/<Host>; Main is the main branch.
	Host, Main string
	// URL and Repository are shown in status.
	URL, Repository string
	// Clean removes what must not leave the host from a description.
	Clean func(string) string
	Log   zerolog.Logger
	Now   func() time.Time
	// MinBackoff, MaxBackoff and Timeout: the Default* values when 0.
	MinBackoff, MaxBackoff, Timeout time.Duration

	mu      sync.Mutex
	q       *queue
	view    status.Forge
	wake    chan struct{}
	running sync.Mutex // one sender, so one request in flight
	// inflight is the Seq of the entry being sent, 0 when none.
	inflight uint64
}

// New returns the reporter for c (report.forge), with the queue loaded
// from the state directory. A queue file that cannot be read is moved
// aside (its statuses are not lost, only not sent) and logged.
func New(c *config.Config, log zerolog.Logger) (*Reporter, error) {
	f := c.Report.Forge
	ep, err := forge.ParseURL(f.URL)
	if err != nil {
		return nil, fmt.Errorf("report.forge.url: %w", err)
	}
	r := &Reporter{Host: c.Hostname, Main: c.Repository.Branch, URL: f.URL, Repository: f.Repository, Log: log}
	r.Post = func(ctx context.Context, sha string, s forge.Status) error {
		b, err := os.ReadFile(f.TokenFile)
		if err != nil {
			return fmt.Errorf("reading report.forge.tokenFile: %w: %w", forge.ErrUnauthorized, err)
		}
		cl := &forge.Client{Endpoint: ep, Repository: f.Repository, Token: strings.TrimSpace(string(b)), UserAgent: "avalanche-agent"}
		return cl.CreateStatus(ctx, sha, s)
	}
	removeStaleTemps(c.QueuePath())
	q, err := loadQueue(c.QueuePath())
	if err != nil {
		aside := c.QueuePath() + ".unreadable"
		if rerr := os.Rename(c.QueuePath(), aside); rerr == nil {
			log.Error().Err(err).Str("movedTo", aside).Msg("forge queue unreadable; starting an empty one")
		} else {
			return nil, fmt.Errorf("%w; and moving it aside: %w", err, rerr)
		}
	}
	r.q = q
	return r, nil
}

func (r *Reporter) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Context is the status context of this host.
func (r *Reporter) Context() string { return "avalanche/" + r.Host }

// Add queues status s for commit and wakes the sender. It only writes the
// queue file; it never waits for the forge.
func (r *Reporter) Add(commit string, s forge.Status) {
	r.mu.Lock()
	r.init()
	if r.Clean != nil {
		s.Description = r.Clean(s.Description)
	}
	s.Description = forge.Elide(s.Description, forge.MaxDescription)
	dropped := r.q.add(commit, s, r.now())
	r.view.Dropped += dropped
	err := r.q.save()
	r.mu.Unlock()
	r.logSave(err, commit, s)
	if dropped > 0 {
		r.Log.Warn().Int("dropped", dropped).Int("max", MaxQueued).Msg("forge queue full; dropped the oldest statuses")
	}
	r.poke()
}

func (r *Reporter) logSave(err error, commit string, s forge.Status) {
	if err != nil {
		// The status stays queued in memory and goes out if the forge
		// answers before the agent stops.
		r.Log.Error().Err(err).Str("commit", commit).Str("state", string(s.State)).Msg("writing the forge queue")
	}
}

// init makes the zero Reporter usable with an in-memory queue; r.mu held.
func (r *Reporter) init() {
	if r.q == nil {
		r.q = &queue{Version: queueVersion}
	}
	if r.wake == nil {
		r.wake = make(chan struct{}, 1)
	}
}

func (r *Reporter) poke() {
	r.mu.Lock()
	r.init()
	wake := r.wake
	r.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

// Status is the reporter's view for `avalanche-agent status`.
func (r *Reporter) Status() *status.Forge {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	v := r.view
	v.URL, v.Repository, v.Queued = r.URL, r.Repository, len(r.q.Entries)
	return &v
}
