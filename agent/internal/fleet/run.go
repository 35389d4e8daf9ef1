package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// Run is `avalanche-agent fleet [flags]`: it reads the inventory (or
// --hosts-file), asks every host for its status and prints a table, or JSON
// with --json. Unreachable hosts are shown, not an error. With --watch it
// refreshes the table until every host runs the tip of --branch or failed
// on it, and fails when some host failed.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repo := fs.String("repo", ".", "the avalanche repository: inventory and git history")
	hostsFile := fs.String("hosts-file", "", `JSON list of {"name","address"} to ask instead of the inventory`)
	branch := fs.String("branch", "main", "branch that hosts are compared with")
	port := fs.Int("port", DefaultPort, "port of the hosts' status endpoint")
	domain := fs.String("domain", "", "domain appended to host names, e.g. your tailnet's MagicDNS suffix")
	timeout := fs.Duration("timeout", DefaultTimeout, "how long to wait for each host")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	watch := fs.Bool("watch", false, "refresh the table until every host runs the tip of --branch or failed on it")
	every := fs.Duration("interval", 5*time.Second, "with --watch: time between refreshes")
	limit := fs.Duration("watch-timeout", time.Hour, "with --watch: give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *watch && *asJSON {
		return errors.New("fleet: --watch draws a table; it does not go with --json")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("fleet: unexpected arguments %q", fs.Args())
	}
	hosts, err := loadHosts(ctx, *repo, *hostsFile)
	if err != nil {
		return err
	}
	o := Options{Timeout: *timeout, Port: *port, Domain: *domain}
	h, err := openHistory(*repo, *branch)
	switch {
	case err != nil && *watch:
		return fmt.Errorf("fleet --watch waits for the tip of %s, which it reads from the repository: %w", *branch, err)
	case err != nil:
		fmt.Fprintf(stderr, "fleet: commits behind %s unknown: %v\n", *branch, err)
	default:
		o.MainCommit, o.Behind = h.main.String(), h.Behind
	}
	if *watch {
		ctx, cancel := context.WithTimeout(ctx, *limit)
		defer cancel()
		f, isFile := stdout.(*os.File)
		clear := isFile && term.IsTerminal(int(f.Fd()))
		rows, err := Watch(ctx, stdout, hosts, o, WatchOptions{Every: *every, Clear: clear})
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("fleet: not every host has %s after %v", o.MainCommit, *limit)
		}
		if err != nil {
			return err
		}
		return WatchError(rows, o.MainCommit)
	}
	rows := Query(ctx, hosts, o)
	if *asJSON {
		return writeJSON(stdout, rows)
	}
	if err := WriteTable(stdout, rows); err != nil {
		return err
	}
	WriteRollout(stdout, rows, rolloutCommit(rows, o.MainCommit))
	return nil
}

func loadHosts(ctx context.Context, repo, hostsFile string) ([]Host, error) {
	if hostsFile == "" {
		return Inventory(ctx, repo)
	}
	b, err := os.ReadFile(hostsFile)
	if err != nil {
		return nil, fmt.Errorf("reading hosts: %w", err)
	}
	var hosts []Host
	if err := json.Unmarshal(b, &hosts); err != nil {
		return nil, fmt.Errorf("decoding hosts %s: %w", hostsFile, err)
	}
	return hosts, nil
}

func writeJSON(w io.Writer, rows []Row) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rows); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}
