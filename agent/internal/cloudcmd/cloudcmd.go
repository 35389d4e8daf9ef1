// Package cloudcmd is the avalanche-cloud program: the operator's
// `avalanche-agent cloud ...` subcommands (provision-exit-node,
// deprovision-exit-node, update-home-ip, status), which plan first and,
// unless --dry-run is given, apply the plan, so running one twice changes
// nothing the second time; and the two cloud roles the daemon runs through
// it (exit-node-ensure, watch-home-ip). They live in their own binary so the
// daemon on every host does not carry the Tailscale and Hetzner clients.
package cloudcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/avalanche-fleet/avalanche/pkg/hetzner"
	"github.com/avalanche-fleet/avalanche/pkg/homeip"
	"tailscale.com/client/local"
)

// ErrUsage is returned (wrapped) for bad arguments; the caller should exit 2.
var ErrUsage = errors.New("usage")

const usage = `usage: avalanche-agent cloud <command> [flags]

commands:
  provision-exit-node    create or repair the Hetzner exit node (server, ssh key, firewall)
  deprovision-exit-node  delete the exit node's server, firewall and ssh key
  update-home-ip         point the firewall's SSH rule at the home's public IP
  status                 show what exists in the cloud

run by the agent itself (with its --config):
  exit-node-ensure       make tailscaled an advertised, approved exit node; print JSON
  watch-home-ip          keep the firewall open to the home's public IP (runs until stopped)

The API token comes from --token-file or HCLOUD_TOKEN. Run a command with -h for its flags.
`

// Run executes one cloud subcommand. args excludes "cloud" itself.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return fmt.Errorf("%w: missing command", ErrUsage)
		}
		return nil
	}
	cmd := &command{stdout: stdout, stderr: stderr, getenv: getenv}
	run, ok := map[string]func(context.Context, []string) error{
		"provision-exit-node":   cmd.provision,
		"deprovision-exit-node": cmd.deprovision,
		"update-home-ip":        cmd.updateHomeIP,
		"status":                cmd.status,
		"exit-node-ensure":      cmd.exitNodeEnsure,
		"watch-home-ip":         cmd.watchHomeIP,
	}[args[0]]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
	}
	return run(ctx, args[1:])
}

// command holds what every subcommand shares.
type command struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	tokenFile string
	name      string
	dryRun    bool
}

func (c *command) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("cloud "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the Hetzner Cloud API token (default: $HCLOUD_TOKEN)")
	fs.StringVar(&c.name, "name", hetzner.DefaultName, "name of the server, its firewall and its ssh key")
	return fs
}

func (c *command) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	return nil
}

// client builds the API client. HCLOUD_ENDPOINT overrides the endpoint,
// as it does for Hetzner's own hcloud CLI.
func (c *command) client() (*hetzner.Client, error) {
	token := c.getenv("HCLOUD_TOKEN")
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading token: %w", err)
		}
		token = string(b)
	}
	if strings.TrimSpace(token) == "" {
		return nil, errors.New("no Hetzner Cloud token: pass --token-file or set HCLOUD_TOKEN")
	}
	return hetzner.NewClient(token, hetzner.Options{Endpoint: c.getenv("HCLOUD_ENDPOINT")}), nil
}

// execute prints the plan and applies it unless this is a dry run.
func (c *command) execute(ctx context.Context, cl *hetzner.Client, p hetzner.Plan) error {
	if c.dryRun {
		fmt.Fprint(c.stdout, "dry run, nothing is changed\n"+p.String())
		return nil
	}
	fmt.Fprint(c.stdout, p.String())
	if p.Empty() {
		return nil
	}
	if err := cl.Apply(ctx, p); err != nil {
		return fmt.Errorf("applying: %w", err)
	}
	fmt.Fprintf(c.stdout, "done: %d call(s) made\n", len(p.Steps))
	return nil
}

// homeIP returns the --home-ip value or, when empty, the public endpoint
// the local tailscaled learned through STUN.
func homeIP(ctx context.Context, flagValue string) (netip.Addr, error) {
	if flagValue != "" {
		a, err := netip.ParseAddr(flagValue)
		if err != nil {
			return a, fmt.Errorf("%w: --home-ip: %v", ErrUsage, err)
		}
		return a, nil
	}
	a, err := homeip.Tailscale{Local: &local.Client{}}.HomeIP(ctx)
	if err != nil {
		return a, fmt.Errorf("detecting home ip (pass --home-ip instead): %w", err)
	}
	return a, nil
}

func (c *command) status(ctx context.Context, args []string) error {
	fs := c.flags("status")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	st, err := cl.Status(ctx, c.name)
	if err != nil {
		return err
	}
	fmt.Fprint(c.stdout, st.String())
	return nil
}
