package builder

import (
	"fmt"
	"os"
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
	cache, err := newCache(c, nix)
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
		Cache:          cache,
		SigningKeyFile: c.Builder.SigningKeyFile,
		Signer:         signer,
		Parallelism:    c.Builder.Parallelism,
		GCRootDir:      filepath.Join(c.StateDir, "builder-gcroots"),
		HostTimeout:    c.Builder.HostTimeout.D(),
	}, nil
}

// newCache returns the S3 bucket of an s3:// builder.cacheURL, uploaded to
// by the avalanche-s3 helper (Debian's Nix cannot open s3:// stores, and
// NixOS's would need the keys in its environment); nil for other URLs,
// which Nix copies to itself. The helper and the keys must be there now,
// so a missing one fails at start-up.
func newCache(c *config.Config, nix Nix) (Cache, error) {
	if !c.Builder.IsS3() {
		return nil, nil
	}
	helper, err := s3Helper(c.Builder.S3Helper)
	if err != nil {
		return nil, fmt.Errorf("builder.s3Helper: %w", err)
	}
	creds, err := os.Open(c.Builder.CacheCredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("builder.cacheCredentialsFile: %w", err)
	}
	creds.Close()
	stageNix, ok := nix.(StageNix)
	if !ok {
		return nil, fmt.Errorf("builder.cacheURL: %T cannot stage NARs for S3", nix)
	}
	// What an upload cut short by a crash left there (one builder per
	// state directory, and New runs before it).
	stage := filepath.Join(c.StateDir, "builder-stage")
	if err := os.RemoveAll(stage); err != nil {
		return nil, fmt.Errorf("builder stage directory: %w", err)
	}
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return nil, fmt.Errorf("builder stage directory: %w", err)
	}
	return &S3Cache{Helper: helper, URL: c.Builder.CacheURL, CredentialsFile: c.Builder.CacheCredentialsFile,
		Nix: stageNix, StageDir: stage}, nil
}

// s3Helper returns the avalanche-s3 to run: configured, else the one next
// to the running agent; it must be an executable file.
func s3Helper(configured string) (string, error) {
	p := configured
	if p == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("locating %s: %w", S3HelperName, err)
		}
		p = filepath.Join(filepath.Dir(exe), S3HelperName)
	}
	info, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", p)
	}
	return p, nil
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
