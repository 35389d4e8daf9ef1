package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/secrets"
)

// manifestPath is where the NixOS module renders a system's secrets manifest.
func manifestPath(system string) string {
	return filepath.Join(system, "etc", "avalanche-agent", "secrets.json")
}

// secretsInstaller is the daemon's Secrets: it decrypts a built system's
// declared secrets with the host's identities into a new generation.
type secretsInstaller struct {
	cfg   *config.Config
	store *secrets.Store
	dec   *secrets.Decrypter
}

func newSecretsInstaller(c *config.Config) *secretsInstaller {
	helper := c.Secrets.Helper
	if helper == "" {
		helper, _ = secrets.DefaultHelper()
	}
	return &secretsInstaller{
		cfg:   c,
		store: &secrets.Store{Link: c.Secrets.Dir, Root: filepath.Join(c.RuntimeDir, "secrets.d"), Keep: c.Secrets.KeepGenerations},
		dec:   &secrets.Decrypter{Helper: helper},
	}
}

// Install implements daemon.Secrets. A system without a manifest declares
// no secrets: nothing changes.
func (s *secretsInstaller) Install(ctx context.Context, system string) (daemon.SecretsResult, error) {
	m, err := secrets.LoadManifest(manifestPath(system))
	if errors.Is(err, secrets.ErrNoManifest) || (err == nil && len(m.Secrets) == 0) {
		return daemon.SecretsResult{}, nil
	}
	if err != nil {
		return daemon.SecretsResult{}, err
	}
	ids, err := secrets.LoadIdentities(s.cfg.Secrets.AgeKeyFiles, s.cfg.Secrets.SSHKeyPaths)
	if err != nil {
		return daemon.SecretsResult{}, err
	}
	if err := secrets.EnsureRAMFS(s.store.Root); err != nil {
		return daemon.SecretsResult{}, err
	}
	prev, _ := s.store.Current()
	values, err := s.dec.Decrypt(ctx, ids, m.Secrets)
	if err != nil {
		return daemon.SecretsResult{}, err
	}
	gen, changed, err := s.store.Install(ctx, m, values)
	if err != nil {
		return daemon.SecretsResult{}, err
	}
	if prev.ID != "" && len(changed) == 0 {
		// Nothing differs (an agent restart, a deployment that kept its
		// secrets): go back to the current generation and drop the copy.
		if err := s.store.Activate(prev); err == nil {
			os.RemoveAll(gen.Path)
			gen = prev
		}
	}
	s.store.Prune()
	restart, reload := secrets.UnitsToRestart(m, changed)
	return daemon.SecretsResult{Generation: gen.ID, Previous: prev.ID, Restart: restart, Reload: reload}, nil
}

// Restore implements daemon.Secrets.
func (s *secretsInstaller) Restore(ctx context.Context, system, id string) (daemon.SecretsResult, error) {
	gen := secrets.Generation{ID: id, Path: filepath.Join(s.store.Root, id)}
	cur, _ := s.store.Current()
	if err := s.store.Activate(gen); err != nil {
		return daemon.SecretsResult{}, err
	}
	r := daemon.SecretsResult{Generation: id, Previous: cur.ID}
	m, err := secrets.LoadManifest(manifestPath(system))
	if err != nil {
		// The generation is back; without a readable manifest there is
		// just no unit to restart.
		return r, nil
	}
	r.Restart, r.Reload = secrets.UnitsToRestart(m, secrets.Changed(m, cur, gen))
	return r, nil
}

func runSecrets(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 || (args[0] != "recipient" && args[0] != "check") {
		fmt.Fprintln(m.Stderr, "usage: avalanche-agent secrets recipient|check [--config F] [--system PATH | --commit SHA [--branch B]]")
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

// buildCommit evaluates and builds a fetched commit's system the way the
// daemon would, under a temporary GC root that cleanup removes.
func buildCommit(ctx context.Context, c *config.Config, branch, commit string) (string, func(), error) {
	n := &rebuild.Nix{ExtraArgs: c.Deploy.NixArgs}
	ev, err := n.Evaluate(ctx, rebuild.FlakeRef(c.RepoDir(), branch, commit), c.FlakeOutput)
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
