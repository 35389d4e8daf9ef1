package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/release"
	"github.com/avalanche-fleet/avalanche/pkg/s3cache/s3url"
)

// Deploy sources: where a host's system comes from.
const (
	// SourceLocal evaluates and builds the system on the host.
	SourceLocal = "local"
	// SourceBuilder substitutes the system the builder's release names.
	SourceBuilder = "builder"
)

// What a host in builder mode does when no release arrives in time.
const (
	// FallbackEvaluate evaluates and builds locally after deploy.builderTimeout.
	FallbackEvaluate = "evaluate"
	// FallbackWait keeps waiting for the release, saying so in status.
	FallbackWait = "wait"
)

// Cache is the fleet binary cache hosts in builder mode substitute from.
type Cache struct {
	// URL is a Nix store URL: https://, http://, s3://…?endpoint=…, ssh-ng://, file://.
	URL string `json:"url,omitempty"`
	// PublicKeys are the only keys whose narinfo signatures are trusted
	// (name:base64, as nix-store --generate-binary-cache-key prints them).
	PublicKeys []string `json:"publicKeys,omitempty"`
}

// Builder configures the builder role: evaluate and build every host per
// main commit, fill the cache, publish signed releases.
type Builder struct {
	Enable bool `json:"enable,omitempty"`
	// CacheURL is the Nix store URL closures are copied to. An s3:// URL
	// (s3://BUCKET?endpoint=HOST:PORT&region=R) is uploaded to with the
	// avalanche-s3 helper (S3Helper), keys from CacheCredentialsFile.
	CacheURL string `json:"cacheURL,omitempty"`
	// CacheCredentialsFile holds the S3 keys for an s3:// CacheURL, in the
	// AWS shared-credentials format (an agent-managed secret).
	CacheCredentialsFile string `json:"cacheCredentialsFile,omitempty"`
	// S3Helper is the path of avalanche-s3, the S3 client the builder runs
	// for an s3:// CacheURL; empty: the one next to the agent.
	S3Helper string `json:"s3Helper,omitempty"`
	// SigningKeyFile is the cache's secret key (nix-store --generate-binary-cache-key).
	SigningKeyFile string `json:"signingKeyFile,omitempty"`
	// ReleaseKeyFile is the SSH private key that signs releases.
	ReleaseKeyFile string `json:"releaseKeyFile,omitempty"`
	// Parallelism bounds the hosts evaluated and built at once.
	Parallelism int `json:"parallelism,omitempty"`
	// HostTimeout bounds one host's evaluation, build and copy.
	HostTimeout Duration `json:"hostTimeout,omitempty"`
}

// FromBuilder reports whether the host deploys the builder's releases.
func (d Deploy) FromBuilder() bool { return d.Source == SourceBuilder }

// TrackedBranches are the branches the agent fetches: main, the testing
// branch, and on a host in builder mode or on the builder the release
// branch, so that a release arrives in the same ref advertisement as the
// commit it is for (an unchanged poll stays one request).
func (c *Config) TrackedBranches() []string {
	branches := []string{c.Repository.Branch, c.Repository.TestingBranch}
	if c.Deploy.FromBuilder() || c.Builder.Enable {
		branches = append(branches, release.Branch)
	}
	return branches
}

// CommitsOnly reports whether the host never reads a commit's tree: a
// builder-mode host that waits for releases (builderFallback "wait") and is
// not the builder. Its copy of the repository keeps commits and the release
// branch only; every other host evaluates: the builder keeps everything, the
// others the commits and their heads' trees (cli.NewRepo).
func (c *Config) CommitsOnly() bool {
	return c.Deploy.FromBuilder() && c.Deploy.BuilderFallback == FallbackWait && !c.Builder.Enable
}

// ReleaseSignersFile is the allowed_signers file release signatures are
// checked against: verify.builderSignersFile, else verify.allowedSignersFile.
func (v Verify) ReleaseSignersFile() string {
	if v.BuilderSignersFile != "" {
		return v.BuilderSignersFile
	}
	return v.AllowedSignersFile
}

func (c *Config) setBuilderDefaults() {
	def(&c.Deploy.Source, SourceLocal)
	def(&c.Deploy.BuilderFallback, FallbackEvaluate)
	defD(&c.Deploy.BuilderTimeout, 30*time.Minute)
	def(&c.Verify.BuilderPrincipal, "builder")
	if c.Builder.Parallelism == 0 {
		c.Builder.Parallelism = 2
	}
	defD(&c.Builder.HostTimeout, 4*time.Hour)
}

// validateBuilder checks the builder-mode settings of both roles.
func (c *Config) validateBuilder() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	d := c.Deploy
	switch d.Source {
	case SourceLocal, SourceBuilder:
	default:
		bad("deploy.source %q is not one of local, builder", d.Source)
	}
	switch d.BuilderFallback {
	case FallbackEvaluate, FallbackWait:
	default:
		bad("deploy.builderFallback %q is not one of evaluate, wait", d.BuilderFallback)
	}
	if d.BuilderTimeout.D() < time.Second {
		bad("deploy.builderTimeout %s is shorter than 1s", d.BuilderTimeout.D())
	}
	if p := c.Verify.BuilderPrincipal; p == "" || strings.ContainsAny(p, " \t,\"") {
		bad("verify.builderPrincipal %q must be one principal name (no blanks, commas or quotes)", p)
	}
	if f := c.Verify.BuilderSignersFile; f != "" && !filepath.IsAbs(f) {
		bad("verify.builderSignersFile %q must be an absolute path", f)
	}
	if d.FromBuilder() {
		errs = append(errs, c.validateSource()...)
	}
	if c.Builder.Enable {
		errs = append(errs, c.Builder.validate(d)...)
	}
	return errs
}

// validateSource checks what a host in builder mode needs.
func (c *Config) validateSource() []error {
	var errs []error
	if err := storeURL(c.Deploy.Cache.URL); err != nil {
		errs = append(errs, fmt.Errorf("deploy.source is builder: deploy.cache.url: %w", err))
	} else if err := untrustingURL(c.Deploy.Cache.URL); err != nil {
		errs = append(errs, fmt.Errorf("deploy.cache.url: %w", err))
	}
	if c.Verify.AllowedSignersFile == "" && len(c.Verify.GPGKeyFiles) == 0 {
		errs = append(errs, errors.New("deploy.source is builder: verify.allowedSignersFile (or verify.gpgKeyFiles) must say who may "+
			"sign commits: without commit verification the chain of trust would start at the release, and "+
			"deploy.builderFallback would deploy unsigned commits"))
	}
	if len(c.Deploy.Cache.PublicKeys) == 0 {
		errs = append(errs, errors.New("deploy.source is builder: deploy.cache.publicKeys needs the cache's public key (name:base64)"))
	}
	for i, k := range c.Deploy.Cache.PublicKeys {
		if _, err := rebuild.ParseCacheKey(k); err != nil {
			errs = append(errs, fmt.Errorf("deploy.cache.publicKeys[%d]: %w", i, err))
		}
	}
	if c.Verify.ReleaseSignersFile() == "" {
		errs = append(errs, errors.New("deploy.source is builder: releases are checked against verify.builderSignersFile "+
			"(or verify.allowedSignersFile), which lists the builder key under verify.builderPrincipal"))
	}
	return errs
}

func (b Builder) validate(d Deploy) []error {
	var errs []error
	if err := storeURL(b.CacheURL); err != nil {
		errs = append(errs, fmt.Errorf("builder.cacheURL: %w", err))
	}
	errs = append(errs, b.validateS3()...)
	for name, f := range map[string]string{"builder.signingKeyFile": b.SigningKeyFile, "builder.releaseKeyFile": b.ReleaseKeyFile} {
		if !filepath.IsAbs(f) {
			errs = append(errs, fmt.Errorf("builder.enable needs %s as an absolute path, got %q", name, f))
		}
	}
	if b.Parallelism < 1 {
		errs = append(errs, fmt.Errorf("builder.parallelism %d must be at least 1", b.Parallelism))
	}
	if b.HostTimeout.D() < time.Second {
		errs = append(errs, fmt.Errorf("builder.hostTimeout %s is shorter than 1s", b.HostTimeout.D()))
	}
	if d.FromBuilder() {
		errs = append(errs, errors.New(`builder.enable: the builder evaluates every host itself; set deploy.source to "local"`))
	}
	return errs
}

// IsS3 reports whether the builder uploads to an S3 bucket through the
// avalanche-s3 helper.
func (b Builder) IsS3() bool { return strings.HasPrefix(b.CacheURL, "s3://") }

// validateS3 checks what an s3:// builder.cacheURL needs.
func (b Builder) validateS3() []error {
	if !b.IsS3() {
		if b.CacheCredentialsFile != "" {
			return []error{fmt.Errorf("builder.cacheCredentialsFile is set but builder.cacheURL %q is not s3://", b.CacheURL)}
		}
		return nil
	}
	var errs []error
	if b.S3Helper != "" && !filepath.IsAbs(b.S3Helper) {
		errs = append(errs, fmt.Errorf("builder.s3Helper must be an absolute path, got %q", b.S3Helper))
	}
	if _, err := s3url.Parse(b.CacheURL); err != nil {
		errs = append(errs, fmt.Errorf("builder.cacheURL: %w", err))
	}
	if !filepath.IsAbs(b.CacheCredentialsFile) {
		errs = append(errs, fmt.Errorf("builder.cacheURL is s3://: builder.cacheCredentialsFile must be an absolute path "+
			"to the bucket's keys (AWS shared-credentials format), got %q", b.CacheCredentialsFile))
	}
	return errs
}

// storeURL checks a Nix store URL that a binary cache can have.
// untrustingURL refuses a store URL that turns off Nix's signature check:
// ?trusted=1 (or true) makes Nix take unsigned paths from the store.
func untrustingURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if v := u.Query().Get("trusted"); v != "" && v != "0" && v != "false" {
		return fmt.Errorf("%q sets trusted=%s, which turns off Nix's signature check of the cache; remove it "+
			"(hosts require signatures by deploy.cache.publicKeys)", raw, v)
	}
	return nil
}

func storeURL(raw string) error {
	if raw == "" {
		return errors.New("is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if !filepath.IsAbs(u.Path) || u.Host != "" {
			return fmt.Errorf("%q: a file:// cache needs an absolute path (file:///…)", raw)
		}
	case "http", "https", "s3", "ssh", "ssh-ng":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
		if _, hasPass := u.User.Password(); hasPass {
			return fmt.Errorf("%q embeds a password; use the store's credential files", redact(u))
		}
	default:
		return fmt.Errorf("%q: scheme must be https, http, s3, ssh-ng, ssh or file", raw)
	}
	return nil
}
