package enrol

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrUsage reports a command-line mistake; the usage was printed.
var ErrUsage = errors.New("usage error")

// usages are the synopses -h prints.
var usages = map[string]string{
	"add-host":        "NAME --system aarch64-linux|x86_64-linux --hardware PROFILE --roles R1,R2 --ssh-host-key FILE|-",
	"remove-host":     "NAME",
	"rotate-host-key": "NAME --ssh-host-key FILE|-",
}

// invocation is one command line: the command, its NAME and flags.
type invocation struct {
	cmd, repo, keyFile, roles string
	host                      Host
}

// Run runs one admin command: args[0] is its name, then NAME and flags in
// any order. The changes are printed to stdout, one line each.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || usages[args[0]] == "" {
		return ErrUsage
	}
	in := &invocation{cmd: args[0]}
	fs := in.flags(stderr)
	name, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	r := &Repo{Root: in.repo}
	if err := r.check(); err != nil {
		return err
	}
	var notes []string
	switch in.cmd {
	case "add-host":
		in.host.Name, in.host.Roles = name, splitRoles(in.roles)
		if in.host.Key, err = readHostKey(in.keyFile, stdin); err == nil {
			notes, err = r.AddHost(ctx, in.host)
		}
	case "rotate-host-key":
		var key HostKey
		if key, err = readHostKey(in.keyFile, stdin); err == nil {
			notes, err = r.RotateHostKey(ctx, name, key)
		}
	case "remove-host":
		notes, err = r.RemoveHost(ctx, name)
	}
	for _, n := range notes {
		fmt.Fprintln(stdout, n)
	}
	if err == nil {
		fmt.Fprintf(stdout, "Review with `git status` and `git diff`, then commit and push.\n")
	}
	return err
}

// flags declares the command's flags into in.
func (in *invocation) flags(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("avalanche-agent "+in.cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s %s [--repo DIR]\n", fs.Name(), usages[in.cmd])
		fs.PrintDefaults()
	}
	fs.StringVar(&in.repo, "repo", ".", "the fleet repository's `directory`")
	if in.cmd == "add-host" {
		fs.StringVar(&in.host.System, "system", "", "aarch64-linux or x86_64-linux")
		fs.StringVar(&in.host.Hardware, "hardware", "", "hardware `profile` (nixos/profiles/hw-<profile>.nix)")
		fs.StringVar(&in.roles, "roles", "", "comma-separated `roles` (nixos/profiles/role-<role>.nix)")
		fs.StringVar(&in.host.StateVersion, "state-version", "", "system.stateVersion (default: the newest of the host folders)")
	}
	if in.cmd != "remove-host" {
		fs.StringVar(&in.keyFile, "ssh-host-key", "", "the host's SSH host public `key`: a .pub file, ssh-keyscan output, or - for stdin")
	}
	return fs
}

// parseArgs takes NAME before or after the flags.
func parseArgs(fs *flag.FlagSet, args []string) (string, error) {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return "", err
	} else if err != nil {
		return "", ErrUsage
	}
	rest := fs.Args()
	if name == "" && len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if name == "" || len(rest) > 0 {
		fs.Usage()
		return "", ErrUsage
	}
	return name, nil
}

func splitRoles(s string) []string {
	var roles []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	return roles
}

func readHostKey(file string, stdin io.Reader) (HostKey, error) {
	var data []byte
	var err error
	switch file {
	case "":
		return HostKey{}, errors.New("--ssh-host-key is required: the host's /etc/ssh/ssh_host_ed25519_key.pub, or `ssh-keyscan -t ed25519 HOST` output (- reads stdin)")
	case "-":
		file = "standard input"
		data, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	default:
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return HostKey{}, fmt.Errorf("reading the host key: %w", err)
	}
	return ParseHostKey(file, data)
}

// check makes sure Root is the fleet repository.
func (r *Repo) check() error {
	for _, f := range []string{InventoryFile, SopsConfigFile} {
		if _, err := os.Stat(r.path(f)); err != nil {
			abs, _ := filepath.Abs(r.Root)
			return fmt.Errorf("%s is not the fleet repository (no %s): run from its top directory or pass --repo", abs, f)
		}
	}
	return nil
}
