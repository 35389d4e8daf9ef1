package fleet

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Outcomes of one host in a watch.
const (
	// WatchDone: the host runs the commit (or one that contains it).
	WatchDone = "done"
	// WatchFailed: the host refuses the commit (it failed or rolled back).
	WatchFailed = "failed"
	// WatchWaiting: neither yet (building, behind, unreachable).
	WatchWaiting = "waiting"
)

// WatchOptions says how `fleet --watch` refreshes.
type WatchOptions struct {
	// Every is the time between two rounds of questions.
	Every time.Duration
	// Clear redraws the table in place (a terminal) instead of printing
	// one table after the other.
	Clear bool
	// Now returns the time shown above each table; tests replace it.
	Now func() time.Time
}

// Outcome says where a host stands with commit: WatchDone when it is zero
// commits behind, WatchFailed when it refuses commit, else WatchWaiting.
func Outcome(r Row, commit string) string {
	switch {
	case !r.Reachable:
		return WatchWaiting
	case r.Commit == commit || r.Behind == 0:
		return WatchDone
	case slices.Contains(r.Refused, commit):
		return WatchFailed
	}
	return WatchWaiting
}

// Watch asks every host again and again, printing the table each round,
// until every host has commit (the tip of main in o) or failed on it, or
// ctx ends. It returns the last rows.
func Watch(ctx context.Context, w io.Writer, hosts []Host, o Options, wo WatchOptions) ([]Row, error) {
	if wo.Every <= 0 {
		wo.Every = 5 * time.Second
	}
	now := wo.Now
	if now == nil {
		now = time.Now
	}
	for {
		rows := Query(ctx, hosts, o)
		if wo.Clear {
			fmt.Fprint(w, "\x1b[H\x1b[2J")
		}
		done := writeSummary(w, rows, o.MainCommit, now())
		if err := WriteTable(w, rows); err != nil {
			return rows, err
		}
		if done {
			return rows, nil
		}
		if !wo.Clear {
			fmt.Fprintln(w)
		}
		select {
		case <-ctx.Done():
			return rows, ctx.Err()
		case <-time.After(wo.Every):
		}
	}
}

// writeSummary prints the line above the table and says whether every
// host is done or failed.
func writeSummary(w io.Writer, rows []Row, commit string, now time.Time) bool {
	by := map[string][]string{}
	for _, r := range rows {
		o := Outcome(r, commit)
		by[o] = append(by[o], r.Host)
	}
	short := commit
	if len(short) > shortCommit {
		short = short[:shortCommit]
	}
	line := fmt.Sprintf("%s  main %s: %d of %d hosts have it", now.Format("15:04:05"), short, len(by[WatchDone]), len(rows))
	if f := by[WatchFailed]; len(f) > 0 {
		line += fmt.Sprintf(", %d failed (%s)", len(f), strings.Join(f, ", "))
	}
	if n := len(by[WatchWaiting]); n > 0 {
		line += fmt.Sprintf(", waiting for %d", n)
	}
	fmt.Fprintln(w, line)
	return len(by[WatchWaiting]) == 0
}

// WatchError is the error of a watch that ended with hosts that failed.
func WatchError(rows []Row, commit string) error {
	var failed []string
	for _, r := range rows {
		if Outcome(r, commit) == WatchFailed {
			failed = append(failed, r.Host)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	what := "hosts"
	if len(failed) == 1 {
		what = "host"
	}
	return fmt.Errorf("fleet: %d %s failed on %s: %s", len(failed), what, commit, strings.Join(failed, ", "))
}
