package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/client"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// target is where a client command finds the daemon and its state.
type target struct {
	socket, statePath, hostname, output string
}

// configFlag registers --config on fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "agent config `file` (tells where the socket and state are; default "+config.DefaultPath+" when it exists)")
}

// parseTarget parses a client command's flags and resolves its target.
func parseTarget(fs *flag.FlagSet, cfg *string, args []string) (target, error) {
	if err := parse(fs, args); err != nil {
		return target{}, err
	}
	return resolveTarget(*cfg)
}

// resolveTarget finds the socket and state from --config, the default config
// file, or the default paths.
func resolveTarget(path string) (target, error) {
	explicit := path != ""
	if !explicit {
		path = config.DefaultPath
	}
	c, err := config.Load(path)
	switch {
	case err == nil:
		return target{socket: c.SocketPath(), statePath: c.StatePath(), hostname: c.Hostname, output: c.FlakeOutput}, nil
	case explicit || !errors.Is(err, config.ErrNoConfig):
		return target{}, err
	}
	host, _ := os.Hostname()
	return target{socket: client.DefaultSocket, statePath: "/var/lib/avalanche-agent/state.json", hostname: host, output: host}, nil
}

func runStatus(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("status")
	cfg := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	t, err := parseTarget(fs, cfg, args)
	if err != nil {
		return err
	}
	c := &client.Client{Socket: t.socket}
	s, err := c.Status(ctx)
	if errors.Is(err, client.ErrNotRunning) {
		st, lerr := state.Load(t.statePath)
		if lerr != nil {
			return fmt.Errorf("%w; and reading its state: %w", err, lerr)
		}
		recs, jerr := journal.Read(filepath.Join(filepath.Dir(t.statePath), "journal"))
		if jerr != nil {
			return fmt.Errorf("%w; and reading its journal: %w", err, jerr)
		}
		s = daemon.FromState(t.hostname, t.output, st, journal.Last(recs))
	} else if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	return WriteStatus(m.Stdout, s, time.Now())
}

// WriteStatus prints s for a person, on one screen.
func WriteStatus(w io.Writer, s status.Status, now time.Time) error {
	running := "daemon running"
	if !s.DaemonRunning {
		running = "DAEMON NOT RUNNING (showing its last saved state)"
	}
	fmt.Fprintf(w, "avalanche-agent on %s (output %s): %s, %s\n", s.Hostname, s.FlakeOutput, s.State, running)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if d := s.Deployed; d != nil {
		fmt.Fprintf(tw, "  deployed\t%s on %s, %s (%s)\n", shortC(d.Commit), d.Branch, resultWords(d), ago(now, d.Time))
		switch {
		case d.StorePath != "" && d.Action == "test":
			fmt.Fprintf(tw, "  system\t%s (test: not in the system profile, gone after a reboot)\n", d.StorePath)
		case d.StorePath != "":
			fmt.Fprintf(tw, "  system\t%s, generation %d\n", d.StorePath, d.Generation)
		}
		writeSource(tw, d, now)
	} else {
		fmt.Fprintf(tw, "  deployed\tnothing yet\n")
	}
	if f := s.Fetched; f.Commit != "" || len(f.Heads) > 0 {
		var heads []string
		for b, c := range f.Heads {
			heads = append(heads, b+" "+shortC(c))
		}
		fmt.Fprintf(tw, "  fetched\t%s (%s)\n", strings.Join(sorted(heads), ", "), ago(now, f.Time))
	}
	writeFlight(tw, s, now)
	writeWaiting(tw, s.Waiting)
	if dr := s.Drift; dr != nil {
		fmt.Fprintf(tw, "  DRIFT\truns %s since %s, not the deployed %s (%s)\n", dr.Running, ago(now, dr.Since), shortC(dr.Commit), dr.Expected)
		fmt.Fprintf(tw, "  \t  likely cause: %s; %s\n", dr.Cause, dr.Repair)
	}
	if len(s.FailedUnits) > 0 {
		fmt.Fprintf(tw, "  host trouble\tunits already failed at the last switch (held against no commit): %s\n", strings.Join(s.FailedUnits, ", "))
	}
	if in := s.Interrupted; in != nil {
		fmt.Fprintf(tw, "  interrupted\t%s at %s (%s): %s\n", shortC(in.Commit), in.Step, ago(now, in.Time), in.Resolution)
	}
	if s.Store != "" {
		fmt.Fprintf(tw, "  store\t%s\n", s.Store)
	}
	reboot := "not needed"
	if s.RebootNeeded {
		reboot = "NEEDED: " + strings.Join(s.RebootReasons, ", ") + " changed"
	}
	fmt.Fprintf(tw, "  reboot\t%s\n", reboot)
	if s.ExitNode != nil {
		e := s.ExitNode
		fmt.Fprintf(tw, "  exit node\tadvertised %s, approved %s, online %s%s\n", yes(e.Advertised), yes(e.Approved), yes(e.Online), errSuffix(e.Error))
	}
	writeBuilderRole(tw, s.Builder, now)
	writeForge(tw, s.Forge, now)
	writeRollout(tw, s.Rollout)
	writeLease(tw, s.Lease, now)
	lastErr := "none"
	if s.LastError != "" {
		lastErr = s.LastError
	}
	first, rest := errorLines(lastErr)
	fmt.Fprintf(tw, "  last error\t%s\n", first)
	for _, l := range rest {
		fmt.Fprintf(tw, "  \t  %s\n", l)
	}
	if s.Suspended {
		fmt.Fprintf(tw, "  suspended\tyes: run `avalanche-agent resume` to deploy again\n")
	}
	if !s.NextPoll.IsZero() && s.DaemonRunning {
		fmt.Fprintf(tw, "  next poll\tin %s\n", s.NextPoll.Sub(now).Round(time.Second))
	}
	return tw.Flush()
}

// writeFlight shows a deployment in progress, or one a stop left open.
func writeFlight(tw io.Writer, s status.Status, now time.Time) {
	f := s.Flight
	if f == nil {
		return
	}
	verb := "deploying"
	switch f.Reason {
	case "drift":
		verb = "repairing drift with"
	case "rollback":
		verb = "rolling back"
	}
	where := "at " + f.Step
	if !s.DaemonRunning {
		where = "stopped at " + f.Step + " (" + f.Event + "); the next start finishes or undoes it"
	}
	fmt.Fprintf(tw, "  in flight\t%s %s, %s (started %s)\n", verb, shortC(f.Commit), where, ago(now, f.Started))
	writeSubstitution(tw, f)
	if p := s.Pending; p != nil && !p.Deadline.IsZero() {
		fmt.Fprintf(tw, "  pending\t%s (%s), confirm by %s\n", shortC(p.Commit), p.Action, p.Deadline.Local().Format("15:04:05"))
	}
}

func runSync(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("sync")
	cfg := configFlag(fs)
	wait := fs.Bool("wait", false, "wait for the pass and fail when it fails")
	force := fs.Bool("force", false, "retry a commit that failed before")
	t, err := parseTarget(fs, cfg, args)
	if err != nil {
		return err
	}
	r, err := (&client.Client{Socket: t.socket}).Sync(ctx, *wait, *force)
	if err != nil {
		return err
	}
	if !*wait {
		fmt.Fprintln(m.Stdout, "sync requested")
		return nil
	}
	if !r.OK {
		return fmt.Errorf("pass %d: %s: %s", r.Pass, r.Result, r.Error)
	}
	fmt.Fprintf(m.Stdout, "pass %d: %s\n", r.Pass, r.Result)
	return nil
}

func runHistory(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("history")
	cfg := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	t, err := parseTarget(fs, cfg, args)
	if err != nil {
		return err
	}
	h, err := (&client.Client{Socket: t.socket}).History(ctx)
	if errors.Is(err, client.ErrNotRunning) {
		st, lerr := state.Load(t.statePath)
		if lerr != nil {
			return fmt.Errorf("%w; and reading its state: %w", err, lerr)
		}
		h = st.History
	} else if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(m.Stdout).Encode(h)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCOMMIT\tBRANCH\tACTION\tRESULT\tGEN\tERROR")
	for i := len(h) - 1; i >= 0; i-- {
		d := h[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.Time.Local().Format("2006-01-02 15:04"), shortC(d.Commit),
			d.Branch, d.Action, d.Result, d.Generation, oneLine(d.Error, 60))
	}
	return tw.Flush()
}

func runSimple(verb string) func(ctx context.Context, m *Main, args []string) error {
	return func(ctx context.Context, m *Main, args []string) error {
		fs := m.flags(verb)
		cfg := configFlag(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		t, err := resolveTarget(*cfg)
		if err != nil {
			return err
		}
		c := &client.Client{Socket: t.socket}
		switch verb {
		case "suspend":
			err = c.Suspend(ctx)
		case "resume":
			err = c.Resume(ctx)
		case "rollback":
			err = c.Rollback(ctx)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "%s: done\n", verb)
		return nil
	}
}

func runCheckConfig(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("check-config")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(m.Stderr, "usage: avalanche-agent check-config FILE")
		return ErrUsage
	}
	c, err := config.Load(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(m.Stderr, "%s is invalid:\n", fs.Arg(0))
		for _, line := range strings.Split(strings.TrimPrefix(err.Error(), fs.Arg(0)+": "), "\n") {
			fmt.Fprintf(m.Stderr, "  - %s\n", line)
		}
		return ExitError{Code: 1}
	}
	fmt.Fprintf(m.Stdout, "%s is valid: host %s deploys %s#%s from %s\n", filepath.Clean(fs.Arg(0)), c.Hostname,
		c.Repository.Branch, c.FlakeOutput, redactURL(c.Repository.URL))
	return nil
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i > 0 && strings.Contains(u[:i], "://") {
		scheme := u[:strings.Index(u, "://")+3]
		return scheme + "…@" + u[i+1:]
	}
	return u
}

func shortC(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	if c == "" {
		return "-"
	}
	return c
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "time unknown"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return t.Local().Format("2006-01-02 15:04:05") + ", " + d.String() + " ago"
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + oneLine(e, 80) + ")"
}

// oneLine collapses s to a single line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

// errorLines splits a (possibly multi-line, command-output-carrying) error
// for the terminal: its first line, shortened, and the last lines of the
// output it carries, where a build or switch says what went wrong.
func errorLines(e string) (string, []string) {
	lines := strings.Split(strings.TrimSpace(e), "\n")
	first := elide(lines[0], 220)
	var rest []string
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); l != "" {
			rest = append(rest, oneLine(l, 160))
		}
	}
	if len(rest) > 3 {
		rest = rest[len(rest)-3:]
	}
	return first, rest
}

// elide shortens s to n runes by cutting its middle: an error's start says
// what failed and its end what the command said.
func elide(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	head := n / 3
	return string(r[:head]) + " … " + string(r[len(r)-(n-head-3):])
}

// resultWords says what a deployment record means for the host.
func resultWords(d *state.Deployment) string {
	switch d.Result {
	case "deployed":
		switch d.Action {
		case "test":
			return "running it until the next boot (test)"
		case "boot":
			return "booting into it next time"
		}
		return "switched to it"
	case "up-to-date":
		return "same system as before, nothing built"
	}
	return d.Result
}
