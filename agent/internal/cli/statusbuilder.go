package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// writeSource says where the deployed system came from, in builder mode.
func writeSource(tw io.Writer, d *state.Deployment, now time.Time) {
	if d == nil || d.Source == "" {
		return
	}
	line := status.SourceWords(d.Commit, d.Source, d.Fallback, d.Release)
	if r := d.Release; r != nil && !r.Built.IsZero() {
		line += ", published " + ago(now, r.Built)
	}
	fmt.Fprintf(tw, "  source\t%s\n", line)
}

// writeWaiting shows a host in builder mode waiting for a release, and
// when the builder looks down.
func writeWaiting(tw io.Writer, w *status.Wait) {
	if w == nil {
		return
	}
	msg, _, _ := strings.Cut(w.Message, "; the builder looks down: ")
	fmt.Fprintf(tw, "  WAITING\t%s\n", msg)
	if w.BuilderDown != "" {
		fmt.Fprintf(tw, "  builder\tLOOKS DOWN: %s\n", oneLine(w.BuilderDown, 200))
	}
}

// writeSubstitution shows the progress of the build step in builder mode.
func writeSubstitution(tw io.Writer, f *status.Flight) {
	if f.Source != "" {
		fmt.Fprintf(tw, "  source\t%s\n", status.SourceWords(f.Commit, f.Source, f.Fallback, f.Release))
	}
	if p := f.Substitution; p != nil {
		fmt.Fprintf(tw, "  substituting\t%d of %d paths, %s of %s\n", p.PathsDone, p.Paths, mib(p.BytesDone), mib(p.Bytes))
	}
}

// writeBuilderRole shows the builder role's progress: the commit, how many
// hosts are in each phase, and the release or why there is none yet.
func writeBuilderRole(tw io.Writer, b *status.Builder, now time.Time) {
	if b == nil {
		return
	}
	if b.Commit == "" {
		fmt.Fprintf(tw, "  builder\tnothing released yet\n")
		return
	}
	count := map[string]int{}
	for _, h := range b.Hosts {
		count[h.Phase]++
	}
	var phases []string
	for _, p := range slices.Sorted(maps.Keys(count)) {
		phases = append(phases, fmt.Sprintf("%d %s", count[p], p))
	}
	line := fmt.Sprintf("%s: %s", shortC(b.Commit), strings.Join(phases, ", "))
	switch {
	case b.Release != "":
		line += "; released as " + shortC(b.Release) + " (" + ago(now, b.Finished) + ")"
	case b.Error != "":
		line += "; NOT RELEASED: " + oneLine(b.Error, 160)
	default:
		line += "; building since " + ago(now, b.Started)
	}
	fmt.Fprintf(tw, "  builder\t%s\n", line)
}

func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
