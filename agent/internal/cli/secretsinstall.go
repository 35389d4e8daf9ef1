package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/avalanche-fleet/avalanche/agent/internal/boot"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/pkg/secrets"
)

// secretsInstaller is the daemon's Secrets: it decrypts a built system's
// declared secrets with the host's identities into a new generation, and
// says whose fault a failure is: a manifest or a secret that does not
// work is the system's (the commit's), keys and file systems the host's.
type secretsInstaller struct {
	cfg   *config.Config
	store *secrets.Store
	dec   *secrets.Decrypter
}

// bootID identifies the current boot for secrets generation names; tests
// replace it to simulate a reboot.
var bootID = boot.ID

func newSecretsInstaller(c *config.Config) *secretsInstaller {
	helper := c.Secrets.Helper
	if helper == "" {
		helper, _ = secrets.DefaultHelper()
	}
	return &secretsInstaller{
		cfg: c,
		store: &secrets.Store{Link: c.Secrets.Dir, Root: filepath.Join(c.RuntimeDir, "secrets.d"),
			Keep: c.Secrets.KeepGenerations, Boot: bootID()},
		dec: &secrets.Decrypter{Helper: helper},
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
		return daemon.SecretsResult{}, fault.New(fault.Commit, err)
	}
	ids, err := secrets.LoadIdentities(s.cfg.Secrets.AgeKeyFiles, s.cfg.Secrets.SSHKeyPaths)
	if err != nil {
		return daemon.SecretsResult{}, fault.New(fault.Host, err)
	}
	if _, err := secrets.EnsureRAMFS(s.store.Root, s.cfg.Secrets.AllowSwappable); err != nil {
		return daemon.SecretsResult{}, fault.New(fault.Host, err)
	}
	prev, _ := s.store.Current()
	values, err := s.dec.Decrypt(ctx, ids, m.Secrets)
	var secErr *secrets.SecretError
	switch {
	case errors.As(err, &secErr):
		return daemon.SecretsResult{}, fault.New(fault.Commit, err)
	case err != nil:
		return daemon.SecretsResult{}, fault.New(fault.Host, err)
	}
	gen, changed, err := s.store.Install(ctx, m, values)
	switch {
	case errors.Is(err, secrets.ErrManifest):
		return daemon.SecretsResult{}, fault.New(fault.Commit, err)
	case err != nil:
		return daemon.SecretsResult{}, fault.New(fault.Host, err)
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
		return daemon.SecretsResult{}, fault.New(fault.Host, err)
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

// Current implements daemon.Secrets: the generation the link points at,
// "" when there is none or it is gone (a reboot emptied the RAM file
// system under a link that survived).
func (s *secretsInstaller) Current() (string, error) {
	g, err := s.store.Current()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	if _, err := os.Stat(g.Path); err != nil {
		return "", nil
	}
	return g.ID, nil
}

// Clean implements daemon.Secrets.
func (s *secretsInstaller) Clean() error { return s.store.Clean() }

// Handover implements the daemon's secretsHandover: it gives the secrets
// of generation that were installed as root's, because their owner did not
// exist before the switch, to the owners the switch created. An owner the
// system never creates is the system's fault.
func (s *secretsInstaller) Handover(ctx context.Context, system, generation string) ([]string, error) {
	m, err := secrets.LoadManifest(manifestPath(system))
	if errors.Is(err, secrets.ErrNoManifest) || generation == "" {
		return nil, nil
	}
	if err != nil {
		return nil, fault.New(fault.Commit, err)
	}
	handed, err := s.store.Handover(secrets.Generation{ID: generation, Path: filepath.Join(s.store.Root, generation)}, m)
	switch {
	case errors.Is(err, secrets.ErrManifest):
		return handed, fault.New(fault.Commit, err)
	case err != nil:
		return handed, fault.New(fault.Host, err)
	}
	return handed, nil
}
