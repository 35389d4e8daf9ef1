package fleet

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// shortCommit and shortError bound the table's columns.
const (
	shortCommit = 12
	shortError  = 50
)

// WriteTable writes rows as an aligned table, one line per host under a
// header: host, commit, commits behind main ("?" when unknown), state,
// whether a reboot is needed, what the builder does for the host (only
// when a builder answered), and the last error (or why the host did not
// answer), shortened to one line.
func WriteTable(w io.Writer, rows []Row) error {
	withBuilder := slices.ContainsFunc(rows, func(r Row) bool { return r.Builder != "" })
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	header := []string{"HOST", "COMMIT", "BEHIND", "STATE", "REBOOT", "LAST ERROR"}
	if withBuilder {
		header = slices.Insert(header, 5, "BUILDER")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		c := cells(r)
		if withBuilder {
			c = slices.Insert(c, 5, cmp.Or(r.Builder, "-"))
		}
		fmt.Fprintln(tw, strings.Join(c, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing table: %w", err)
	}
	return nil
}

func cells(r Row) []string {
	if !r.Reachable {
		return []string{r.Host, "-", "-", "unreachable", "-", shorten(r.Err, shortError)}
	}
	commit := r.Commit
	if len(commit) > shortCommit {
		commit = commit[:shortCommit]
	}
	if commit == "" {
		commit = "-"
	}
	behind := "?"
	if r.Behind >= 0 {
		behind = strconv.Itoa(r.Behind)
	}
	reboot := "no"
	if r.RebootNeeded {
		reboot = "yes"
	}
	lastErr := shorten(r.LastError, shortError)
	if lastErr == "" {
		lastErr = "-"
	}
	return []string{r.Host, commit, behind, r.State, reboot, lastErr}
}

// shorten folds s onto one line and cuts it to at most n runes.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}
