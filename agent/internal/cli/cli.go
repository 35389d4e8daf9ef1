// Package cli is avalanche-agent's command line: the daemon (run) and the
// client commands that talk to it. Main holds the process's streams and
// arguments so tests drive the CLI in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// Main is one invocation of avalanche-agent.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Args   []string // without the program name
	// Getenv reads the environment; os.Getenv when nil.
	Getenv func(string) string
}

// ErrUsage reports a command-line mistake; the usage was printed.
var ErrUsage = errors.New("usage error")

// ExitError carries a specific exit code without printing anything more.
type ExitError struct{ Code int }

// Error implements error.
func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

type command struct {
	summary string
	run     func(ctx context.Context, m *Main, args []string) error
}

func commands() map[string]command {
	cmds := map[string]command{
		"run":           {"run the daemon", runDaemon},
		"status":        {"show what this host runs and what the agent is doing", runStatus},
		"sync":          {"poll the repository now (--wait for the result)", runSync},
		"history":       {"show recent deployments", runHistory},
		"suspend":       {"stop deploying (fetching goes on)", runSimple("suspend")},
		"resume":        {"deploy again after suspend", runSimple("resume")},
		"rollback":      {"return to the previous deployment and refuse the current commit", runSimple("rollback")},
		"check-config":  {"validate a config file, listing every problem", runCheckConfig},
		"version":       {"print the version", runVersion},
		"switch-result": {"(run by systemd) record how a switch unit ended", runSwitchResult},
		"secrets":       {"secrets recipient | check | handover: this host's SOPS side", runSecrets},
		"cloud":         {"operate the Hetzner exit-node VPS", runCloud},
		"fleet":         {"show every host of the fleet at a glance", runFleet},
		"demo":          {"deploy a pushed commit in a throw-away sandbox", runDemo},
		"rollout":       {"pause | resume | skip COMMIT: steer a commit's rollout fleet-wide", runRollout},
	}
	for name, summary := range hostCommandUsage {
		cmds[name] = command{summary, runHostCommand(name)}
	}
	return cmds
}

// Execute runs the command named by m.Args.
func (m *Main) Execute(ctx context.Context) error {
	if m.Getenv == nil {
		m.Getenv = os.Getenv
	}
	if len(m.Args) == 0 || m.Args[0] == "help" || m.Args[0] == "-h" || m.Args[0] == "--help" {
		m.usage(m.Stdout)
		return nil
	}
	c, ok := commands()[m.Args[0]]
	if !ok {
		fmt.Fprintf(m.Stderr, "avalanche-agent: unknown command %q\n", m.Args[0])
		m.usage(m.Stderr)
		return ErrUsage
	}
	return c.run(ctx, m, m.Args[1:])
}

func (m *Main) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: avalanche-agent <command> [flags]")
	fmt.Fprintln(w)
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-15s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun avalanche-agent <command> -h for a command's flags.")
}

// flags returns a FlagSet that prints errors and usage to m.Stderr.
func (m *Main) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("avalanche-agent "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

// parse parses args, mapping -h and bad flags to ErrUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitError{Code: 0}
		}
		return ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ErrUsage
	}
	return nil
}

func runVersion(ctx context.Context, m *Main, args []string) error {
	fmt.Fprintf(m.Stdout, "avalanche-agent %s\n", Version)
	return nil
}

// runSwitchResult is the switch unit's ExecStopPost=: it records the
// result systemd hands it, durably, for an agent that may be down.
func runSwitchResult(ctx context.Context, m *Main, args []string) error {
	if len(args) != 1 {
		fmt.Fprintln(m.Stderr, "usage: avalanche-agent switch-result FILE (run by systemd as ExecStopPost=)")
		return ErrUsage
	}
	return daemon.WriteSwitchResult(args[0], rebuild.UnitResultFromEnv())
}
