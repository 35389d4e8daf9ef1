// Package lease is the disruption budget (docs/rollouts.md): at most Budget
// hosts of a group activate or reboot at once. There is no coordinator: the
// lease lives in the forge's commit statuses, where every agent already
// writes, on one fixed anchor commit. A host claims with a pending status
// of context avalanche/lease/<group>/<host> whose description carries the
// claim's time to live and its sequence number; it holds the lease while
// its claim is among the Budget lowest sequence numbers of the group's
// unexpired claims (ZooKeeper's lowest-sequence lock recipe, with the
// forge's increasing status ids as the sequence). A claim's first post
// takes its id as sequence number; renewals carry it, so a renewing holder
// keeps its place. Releasing posts success. A holder that dies stops
// renewing and its claim expires: nobody waits forever.
package lease

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// ContextPrefix starts the context of every claim:
// avalanche/lease/<group>/<host>.
const ContextPrefix = "avalanche/lease/"

// WordReleased is the description of a released claim.
const WordReleased = "released"

// Reader returns the latest status of each context on a commit;
// (*forge.Client).Latest is one.
type Reader func(ctx context.Context, sha string) ([]forge.CommitStatus, error)

// Poster sets a status and returns it as the forge recorded it (its id);
// (*forge.Client).Create is one.
type Poster func(ctx context.Context, sha string, s forge.Status) (forge.CommitStatus, error)

// Lease is one host's side of its group's lease. Set the fields before
// use. It keeps nothing between calls: every answer comes from the forge.
type Lease struct {
	Group  string
	Budget int
	Host   string
	// Anchor is the commit the claims are set on (rollout.lease.anchor).
	Anchor string
	// TTL is how long a claim lives without a renewal.
	TTL  time.Duration
	Read Reader
	Post Poster
	Now  func() time.Time
}

// Claim is one host's claim as the forge shows it.
type Claim struct {
	Host string `json:"host"`
	// ID is the claim's latest status; Seq its place in the queue (the id
	// of the claim's first status).
	ID      int64     `json:"id"`
	Seq     int64     `json:"seq"`
	Expires time.Time `json:"expires"`
	// Commit is what the host activates under the lease (short).
	Commit string `json:"commit,omitempty"`
}

// View is the group's lease as last read, for this host.
type View struct {
	Group  string `json:"group"`
	Budget int    `json:"budget"`
	// Held is set while this host's claim is among the Budget first.
	Held bool `json:"held"`
	// Holders are the claims that hold the lease, by place.
	Holders []Claim `json:"holders,omitempty"`
	// Mine is this host's claim; zero when it has none.
	Mine Claim `json:"mine,omitzero"`
	// Since is when this host began to want the lease (set by the agent).
	Since time.Time `json:"since,omitzero"`
}

// Context is the status context of host's claim in group.
func Context(group, host string) string { return ContextPrefix + group + "/" + host }

func (l *Lease) context() string { return Context(l.Group, l.Host) }

// Take posts this host's claim for commit and returns it. An unexpired
// claim of this host (one it holds, or a renewal) keeps its place; an
// expired or released one starts at the end of the queue. Errors are the
// forge's (forge.ErrUnavailable: try again).
func (l *Lease) Take(ctx context.Context, commit string) (Claim, error) {
	statuses, err := l.Read(ctx, l.Anchor)
	if err != nil {
		return Claim{}, fmt.Errorf("reading the claims of group %s: %w", l.Group, err)
	}
	var seq int64
	now := l.Now()
	for _, c := range Claims(l.Group, statuses, now) {
		// A claim about to expire is not renewed in place: others may
		// already count it gone.
		if c.Host == l.Host && c.Expires.Sub(now) > l.TTL/10 {
			seq = c.Seq
		}
	}
	posted, err := l.Post(ctx, l.Anchor, forge.Status{State: forge.Pending, Context: l.context(),
		Description: Describe(seq, l.TTL, commit)})
	if err != nil {
		return Claim{}, fmt.Errorf("claiming the lease of group %s: %w", l.Group, err)
	}
	c, ok := parse(l.Group, posted)
	if !ok {
		return Claim{}, fmt.Errorf("claiming the lease of group %s: the forge recorded %+v, not a claim: %w", l.Group, posted.Status, forge.ErrRejected)
	}
	return c, nil
}

// Check reads the group's claims: Held says whether this host's claim is
// among the Budget first.
func (l *Lease) Check(ctx context.Context) (View, error) {
	statuses, err := l.Read(ctx, l.Anchor)
	if err != nil {
		return View{}, fmt.Errorf("reading the claims of group %s: %w", l.Group, err)
	}
	return Judge(l.Group, l.Budget, l.Host, statuses, l.Now()), nil
}

// Release gives the lease back (or withdraws a waiting claim).
func (l *Lease) Release(ctx context.Context, commit string) error {
	if _, err := l.Post(ctx, l.Anchor, forge.Status{State: forge.Success, Context: l.context(),
		Description: WordReleased + " after " + commit}); err != nil {
		return fmt.Errorf("releasing the lease of group %s: %w", l.Group, err)
	}
	return nil
}

// Judge says who holds group's lease among statuses, at now.
func Judge(group string, budget int, host string, statuses []forge.CommitStatus, now time.Time) View {
	v := View{Group: group, Budget: budget}
	for i, c := range Claims(group, statuses, now) {
		if i < budget {
			v.Holders = append(v.Holders, c)
		}
		if c.Host == host {
			v.Mine, v.Held = c, i < budget
		}
	}
	return v
}

// Claims returns group's unexpired claims at now, by place.
func Claims(group string, statuses []forge.CommitStatus, now time.Time) []Claim {
	var out []Claim
	for _, s := range statuses {
		if c, ok := parse(group, s); ok && now.Before(c.Expires) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Claim) int { return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.ID, b.ID)) })
	return out
}

// Describe is a claim's description: "lease ttl=15m0s seq=42 for
// 0123abcd" (no seq on a claim's first status, whose own id is its place).
func Describe(seq int64, ttl time.Duration, commit string) string {
	s := "lease ttl=" + ttl.String()
	if seq > 0 {
		s += " seq=" + strconv.FormatInt(seq, 10)
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	return s + " for " + commit
}

// parse reads a claim of group from a status; ok is false for anything
// else (a released claim, another group, a description it cannot read).
// The claim expires TTL after the forge recorded it: the forge's clock,
// not the claimant's, which a Raspberry Pi without a battery-backed clock
// may not have set yet.
func parse(group string, s forge.CommitStatus) (Claim, bool) {
	host, ok := strings.CutPrefix(s.Context, ContextPrefix+group+"/")
	if !ok || s.State != forge.Pending || host == "" || strings.Contains(host, "/") {
		return Claim{}, false
	}
	c := Claim{Host: host, ID: s.ID, Seq: s.ID}
	var ttl time.Duration
	fields := strings.Fields(s.Description)
	if len(fields) == 0 || fields[0] != "lease" {
		return Claim{}, false
	}
	for i, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch {
		case k == "ttl":
			ttl, _ = time.ParseDuration(v)
		case k == "seq":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && n < s.ID {
				c.Seq = n
			}
		case f == "for" && i+2 < len(fields):
			c.Commit = fields[i+2]
		}
	}
	at := s.Updated
	if at.IsZero() {
		at = s.Created
	}
	if ttl <= 0 || at.IsZero() {
		return Claim{}, false
	}
	c.Expires = at.Add(ttl)
	return c, true
}
