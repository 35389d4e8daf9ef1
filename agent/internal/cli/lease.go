package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/lease"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// forgeTimeout bounds one request of the lease to the forge.
const forgeTimeout = 30 * time.Second

// wireLease sets the disruption budget of a host in a group
// (rollout.group): its deployments take the group's lease, kept in the
// forge's commit statuses on rollout.lease.anchor, before they change
// anything. The group, budget and anchor are read at start: a reloaded
// config changes them at the next start.
func wireLease(d *daemon.Daemon, c *config.Config) {
	r := c.Rollout
	if r.Group == "" || !c.Report.Forge.Enabled() {
		return
	}
	client, err := forgeClient(c)
	if err != nil {
		d.Log.Error().Err(err).Msg("disruption budget off")
		return
	}
	d.Lease = &lease.Lease{Group: r.Group, Budget: r.Budget(), Host: c.Hostname, Anchor: r.Lease.Anchor,
		TTL: r.Lease.TTL.D(), Now: time.Now,
		Read: func(ctx context.Context, sha string) ([]forge.CommitStatus, error) {
			cl, err := client()
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(ctx, forgeTimeout)
			defer cancel()
			return cl.Latest(ctx, sha)
		},
		Post: func(ctx context.Context, sha string, s forge.Status) (forge.CommitStatus, error) {
			cl, err := client()
			if err != nil {
				return forge.CommitStatus{}, err
			}
			ctx, cancel := context.WithTimeout(ctx, forgeTimeout)
			defer cancel()
			return cl.Create(ctx, sha, s)
		}}
}

// writeLease is status's line about the disruption budget's lease, while
// a deployment wants or holds it.
func writeLease(w io.Writer, v *lease.View, now time.Time) {
	if v == nil {
		return
	}
	var holders []string
	for _, c := range v.Holders {
		holders = append(holders, fmt.Sprintf("%s (place %d, expires in %s)", c.Host, c.Seq, c.Expires.Sub(now).Round(time.Second)))
	}
	state := "held"
	if !v.Held {
		state = fmt.Sprintf("waiting %s", now.Sub(v.Since).Round(time.Second))
	}
	fmt.Fprintf(w, "  lease	group %s (%d at once): %s; holders %s\n", v.Group, v.Budget, state, strings.Join(holders, ", "))
}
