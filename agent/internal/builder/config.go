package builder

import (
	"fmt"
	"path/filepath"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// New returns the builder role for c (builder.enable), fetching and pushing
// with git and building with nix. It reads the release key.
func New(c *config.Config, git Git, nix Nix) (*Builder, error) {
	signer, err := release.LoadSigner(c.Builder.ReleaseKeyFile)
	if err != nil {
		return nil, err
	}
	return &Builder{
		Name:           c.Hostname,
		RepoDir:        c.RepoDir(),
		Branch:         c.Repository.Branch,
		Git:            git,
		Nix:            nix,
		CacheURL:       c.Builder.CacheURL,
		SigningKeyFile: c.Builder.SigningKeyFile,
		Signer:         signer,
		Parallelism:    c.Builder.Parallelism,
		GCRootDir:      filepath.Join(c.StateDir, "builder-gcroots"),
		HostTimeout:    c.Builder.HostTimeout.D(),
	}, nil
}

// NewSource returns the host side of builder mode for c (deploy.source
// "builder"), substituting with nix.
func NewSource(c *config.Config, nix Substituter) (*Source, error) {
	cache := rebuild.Cache{URL: c.Deploy.Cache.URL}
	for _, k := range c.Deploy.Cache.PublicKeys {
		key, err := rebuild.ParseCacheKey(k)
		if err != nil {
			return nil, fmt.Errorf("deploy.cache.publicKeys: %w", err)
		}
		cache.Keys = append(cache.Keys, key)
	}
	return &Source{
		Finder: release.Finder{RepoDir: c.RepoDir(),
			Verifier: release.AllowedSigners(c.Verify.ReleaseSignersFile(), c.Verify.BuilderPrincipal)},
		Self:  release.Self{Output: c.FlakeOutput, System: rebuild.System()},
		Cache: cache,
		Nix:   nix,
	}, nil
}
