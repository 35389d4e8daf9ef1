package cloudcmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/hetzner"
)

func (c *command) provision(ctx context.Context, args []string) error {
	fs := c.flags("provision-exit-node")
	spec := hetzner.Spec{}
	var keyFile, home string
	var ud UserDataOptions
	fs.StringVar(&spec.ServerType, "server-type", hetzner.DefaultServerType, "Hetzner server type")
	fs.StringVar(&spec.Location, "location", hetzner.DefaultLocation, "Hetzner location, e.g. nbg1, fsn1, hel1")
	fs.StringVar(&spec.Image, "image", hetzner.DefaultImage, "image nixos-infect starts from")
	fs.StringVar(&keyFile, "ssh-key-file", "", "operator's SSH public key file (required)")
	fs.StringVar(&home, "home-ip", "", "home's public IP allowed to SSH in (default: detected through the local tailscaled)")
	fs.StringVar(&ud.Flake, "flake", "", "flake reference to switch to after nixos-infect, pinned to a signed commit: git+https://git.example/fleet/avalanche?rev=<sha>#vps")
	signers := fs.String("allowed-signers", "", "allowed_signers file the --flake commit must be signed by (required with --flake)")
	repoDir := fs.String("repo", ".", "git checkout or bare repository holding the --flake commit, to verify its signature")
	fs.StringVar(&ud.InfectURL, "nixos-infect-url", DefaultInfectURL, "nixos-infect script to run, https at a fixed commit")
	fs.StringVar(&ud.InfectSHA256, "nixos-infect-sha256", "", "sha256 of that script (required with --nixos-infect-url; the default URL has its own)")
	fs.StringVar(&ud.Channel, "nix-channel", DefaultChannel, "NixOS channel nixos-infect installs first")
	noInfect := fs.Bool("no-infect", false, "create the server without user data (for the nixos-anywhere route)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "print the API calls without making them")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if keyFile == "" {
		return fmt.Errorf("%w: --ssh-key-file is required", ErrUsage)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("reading ssh public key: %w", err)
	}
	spec.Name, spec.SSHPublicKey = c.name, strings.TrimSpace(string(key))
	ud.AuthorizedKey = spec.SSHPublicKey
	if !*noInfect {
		if spec.UserData, err = UserData(ud); err != nil {
			return err
		}
		if err := verifyFlake(ctx, ud.Flake, *repoDir, *signers); err != nil {
			return err
		}
	}
	if spec.HomeIP, err = homeIP(ctx, home); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	p, err := cl.PlanProvision(ctx, spec)
	if err != nil {
		return fmt.Errorf("planning: %w", err)
	}
	return c.execute(ctx, cl, p)
}

// verifyFlake checks, before any user data leaves this machine, that the
// commit the bootstrap will switch to as root carries a valid signature
// from an allowed signer, as every agent checks a commit before deploying.
func verifyFlake(ctx context.Context, flake, repoDir, signersFile string) error {
	if flake == "" {
		return nil
	}
	if signersFile == "" {
		return fmt.Errorf("%w: --flake needs --allowed-signers: the server switches to that commit as root before any agent verifies it", ErrUsage)
	}
	rev, err := FlakeRev(flake)
	if err != nil {
		return err
	}
	dir := repoDir
	if fi, err := os.Stat(filepath.Join(repoDir, ".git")); err == nil && fi.IsDir() {
		dir = filepath.Join(repoDir, ".git")
	}
	repo := &gitsync.Repo{Dir: dir}
	if _, err := repo.VerifyCommit(ctx, rev, gitsync.Signers{AllowedSignersFile: signersFile}); err != nil {
		return fmt.Errorf("verifying the --flake commit %s in %s: %w", rev, repoDir, err)
	}
	return nil
}

func (c *command) deprovision(ctx context.Context, args []string) error {
	fs := c.flags("deprovision-exit-node")
	fs.BoolVar(&c.dryRun, "dry-run", false, "print the API calls without making them")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	p, err := cl.PlanDeprovision(ctx, c.name)
	if err != nil {
		return fmt.Errorf("planning: %w", err)
	}
	return c.execute(ctx, cl, p)
}

func (c *command) updateHomeIP(ctx context.Context, args []string) error {
	fs := c.flags("update-home-ip")
	var home string
	fs.StringVar(&home, "home-ip", "", "home's public IP (default: detected through the local tailscaled)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "print the API call without making it")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	ip, err := homeIP(ctx, home)
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	p, err := cl.PlanFirewallRules(ctx, c.name, ip)
	if err != nil {
		return fmt.Errorf("planning: %w", err)
	}
	return c.execute(ctx, cl, p)
}
