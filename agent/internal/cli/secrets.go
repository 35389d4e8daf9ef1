package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/secrets"
)

// manifestPath is where the NixOS module renders a system's secrets manifest.
func manifestPath(system string) string {
	return filepath.Join(system, "etc", "avalanche-agent", "secrets.json")
}

func runSecrets(ctx context.Context, m *Main, args []string) error {
	if len(args) > 0 && args[0] == "handover" {
		return runHandover(ctx, m, args[1:])
	}
	if len(args) == 0 || (args[0] != "recipient" && args[0] != "check") {
		fmt.Fprintln(m.Stderr, "usage: avalanche-agent secrets recipient|check [--config F] [--system PATH | --commit SHA [--branch B]]")
		fmt.Fprintln(m.Stderr, "       avalanche-agent secrets handover [--config F] --system PATH")
		return ErrUsage
	}
	fs := m.flags("secrets " + args[0])
	cfgPath := fs.String("config", config.DefaultPath, "agent config `file`")
	system := fs.String("system", "", "system whose manifest to check (default: deploy.currentSystem)")
	commit := fs.String("commit", "", "check the system of this fetched `commit` instead (built if needed)")
	branch := fs.String("branch", "", "branch the commit is on (default: repository.branch)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	c, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	ids, err := secrets.LoadIdentities(c.Secrets.AgeKeyFiles, c.Secrets.SSHKeyPaths)
	if err != nil {
		return err
	}
	if args[0] == "recipient" {
		for _, r := range ids.Recipients() {
			fmt.Fprintln(m.Stdout, r)
		}
		return nil
	}
	switch {
	case *commit != "":
		if *branch == "" {
			*branch = c.Repository.Branch
		}
		if err := verifyForCheck(ctx, c, *commit); err != nil {
			return err
		}
		out, cleanup, err := buildCommit(ctx, c, *branch, *commit)
		if err != nil {
			return err
		}
		defer cleanup()
		*system = out
	case *system == "":
		*system = c.Deploy.CurrentSystem
	}
	return checkSecrets(ctx, m, newSecretsInstaller(c).dec, ids, *system)
}

// fullHash is a full commit hash, the only form a deployment handles.
var fullHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// verifyForCheck refuses a commit that a deployment would refuse, before
// anything of it is evaluated or built as root: it must descend from the
// last main commit deployed here (no older commit, no rewritten history)
// and, when signers are configured, carry a valid signature from one.
func verifyForCheck(ctx context.Context, c *config.Config, commit string) error {
	if !fullHash.MatchString(commit) {
		return fmt.Errorf("--commit %q: give the full 40-hex commit hash (git rev-parse)", commit)
	}
	st, err := state.Load(c.StatePath())
	if err != nil {
		return err
	}
	repo := &gitsync.Repo{Dir: c.RepoDir()}
	if st.LastMain != "" {
		ok, err := repo.IsAncestor(ctx, st.LastMain, commit)
		if err != nil {
			return fmt.Errorf("checking that %s descends from the deployed %s (is it fetched? only %s and %s are): %w",
				commit, st.LastMain, c.Repository.Branch, c.Repository.TestingBranch, err)
		}
		if !ok {
			return fmt.Errorf("refusing to check %s: it does not descend from %s, the last %s commit deployed here "+
				"(an older commit or a rewritten history), so no deployment would take it", commit, st.LastMain, c.Repository.Branch)
		}
	}
	signers := gitsync.Signers{AllowedSignersFile: c.Verify.AllowedSignersFile, GPGKeyFiles: c.Verify.GPGKeyFiles}
	if _, err := repo.VerifyCommit(ctx, commit, signers); err != nil {
		return fmt.Errorf("refusing to check %s: no deployment would take it: %w", commit, err)
	}
	return nil
}

// buildCommit evaluates and builds a fetched commit's system the way the
// daemon would, under a temporary GC root that cleanup removes.
func buildCommit(ctx context.Context, c *config.Config, branch, commit string) (string, func(), error) {
	n := &rebuild.Nix{ExtraArgs: c.Deploy.NixArgs}
	evalDir, err := NewRepo(c).EvalDir(ctx, commit)
	if err != nil {
		return "", nil, fmt.Errorf("reading the tree of %s: %w", commit, err)
	}
	ev, err := n.Evaluate(ctx, rebuild.FlakeRef(evalDir, branch, commit), c.FlakeOutput)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "avalanche-secrets-check-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	out, err := n.Build(ctx, ev, filepath.Join(dir, "system"))
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return out, cleanup, nil
}

// checkSecrets decrypts a system's manifest in memory, one line per secret.
func checkSecrets(ctx context.Context, m *Main, dec *secrets.Decrypter, ids *secrets.Identities, system string) error {
	man, err := secrets.LoadManifest(manifestPath(system))
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range secrets.Check(ctx, dec, ids, man) {
		if r.Err != nil {
			failed++
			fmt.Fprintf(m.Stdout, "FAIL  %-24s %v\n", r.Name, r.Err)
			continue
		}
		fmt.Fprintf(m.Stdout, "ok    %-24s %d bytes\n", r.Name, r.Size)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d secrets cannot be decrypted on this host", failed, len(man.Secrets))
	}
	return nil
}

// runHandover gives the current secrets generation's files that were
// installed as root's, because their owner did not exist yet, to the
// owners system declares. The NixOS module runs it inside the activation,
// after users and groups are created and before services start, so a
// fresh host's first switch starts kanidm with a secret kanidm can read.
// Without a current generation (early boot: the agent installs them
// later) there is nothing to do.
func runHandover(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("secrets handover")
	cfgPath := fs.String("config", config.DefaultPath, "agent config `file`")
	system := fs.String("system", "", "the system being activated (its secrets manifest)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *system == "" {
		return fmt.Errorf("%w: --system is required", ErrUsage)
	}
	c, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	s := newSecretsInstaller(c)
	gen, err := s.Current()
	if err != nil || gen == "" {
		return err
	}
	handed, err := s.Handover(ctx, *system, gen)
	for _, n := range handed {
		fmt.Fprintf(m.Stdout, "handed over %s\n", n)
	}
	return err
}
