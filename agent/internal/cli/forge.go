package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/report"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// wireForge reports every deployment to the forge as a commit status
// (report.forge): the daemon's deployment events fill the reporter's
// durable queue, which its sender empties for as long as the daemon runs.
// It returns the reporter, nil when reporting is off.
func wireForge(d *daemon.Daemon, c *config.Config) *report.Reporter {
	if !c.Report.Forge.Enabled() {
		return nil
	}
	r, err := report.New(c, d.Log)
	if err != nil {
		d.Log.Error().Err(err).Msg("forge commit statuses are off")
		return nil
	}
	r.Clean = redactor(c)
	d.Hooks.Deployment = r.Deployment
	d.Hooks.Background = r.Run
	return r
}

// reportRelease makes the builder role's releases commit statuses too
// (avalanche/builder); rel as it is without a reporter or a builder role.
func reportRelease(rel daemon.Releaser, r *report.Reporter) daemon.Releaser {
	if rel == nil || r == nil {
		return rel
	}
	return &reportingReleaser{Releaser: rel, r: r}
}

// reportingReleaser reports each release's start and outcome.
type reportingReleaser struct {
	daemon.Releaser
	r *report.Reporter
}

func (x *reportingReleaser) Release(ctx context.Context, commit string) (release.Found, error) {
	x.r.BuilderStarted(commit)
	found, err := x.Releaser.Release(ctx, commit)
	if ctx.Err() != nil {
		return found, err // a stop: the next start releases and reports
	}
	hosts := map[string]string{}
	for name, h := range found.Hosts {
		hosts[name] = h.Error
	}
	x.r.BuilderDone(commit, hosts, found.Error, err)
	return found, err
}

// writeForge is status's line about the forge: whether statuses reach it.
func writeForge(w io.Writer, f *status.Forge, now time.Time) {
	if f == nil {
		return
	}
	where := f.Repository + " on " + f.URL
	queued := fmt.Sprintf("%d queued", f.Queued)
	if f.Dropped > 0 {
		queued += fmt.Sprintf(", %d dropped", f.Dropped)
	}
	switch {
	case !f.FailingSince.IsZero():
		fmt.Fprintf(w, "  forge\tCANNOT REACH %s since %s\n", where, ago(now, f.FailingSince))
		fmt.Fprintf(w, "  \t  %s\n", oneLine(f.Error, 200))
		fmt.Fprintf(w, "  \t  %s, next try in %s\n", queued, f.NextAttempt.Sub(now).Round(time.Second))
	case f.LastSent.IsZero():
		fmt.Fprintf(w, "  forge\tcommit statuses to %s: none sent yet, %s%s\n", where, queued, errSuffix(f.Error))
	default:
		fmt.Fprintf(w, "  forge\tcommit statuses to %s: last sent %s, %s%s\n", where, ago(now, f.LastSent), queued, errSuffix(f.Error))
	}
}
