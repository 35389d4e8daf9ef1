package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

func TestNewFromConfig(t *testing.T) {
	key, _ := gittest.NewSSHKey(t, t.TempDir(), "release")
	const cacheKey = "possum-1:DZYU+a3kHdAtCxsRzThRY0vNTAkkv48kTRBUnVM/dBw="
	c, err := config.Parse([]byte(`{"version":1,"hostname":"raccoon00","repository":{"url":"/srv/avalanche.git"},
  "deploy": {"source": "builder", "cache": {"url": "http://possum.internal:5000", "publicKeys": ["` + cacheKey + `"]}},
  "verify": {"allowedSignersFile": "/etc/a/allowed_signers", "builderPrincipal": "builder-cardinal"}}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSource(c, &rebuild.Nix{})
	if err != nil {
		t.Fatalf("NewSource = %v", err)
	}
	want := release.AllowedSigners("/etc/a/allowed_signers", "builder-cardinal")
	if s.Finder.Verifier != want || s.Finder.RepoDir != c.RepoDir() || s.Self.Output != "raccoon00" ||
		s.Self.System != rebuild.System() || len(s.Cache.Keys) != 1 || s.Cache.Keys[0].String() != cacheKey {
		t.Errorf("NewSource = %+v", s)
	}

	c.Builder = config.Builder{Enable: true, CacheURL: "file:///srv/cache", SigningKeyFile: "/k", ReleaseKeyFile: key, Parallelism: 3}
	b, err := New(c, nil, &rebuild.Nix{})
	if err != nil || b.Name != "raccoon00" || b.Parallelism != 3 || b.Signer == nil {
		t.Fatalf("New = %+v, %v", b, err)
	}
	c.Builder.ReleaseKeyFile = filepath.Join(t.TempDir(), "missing")
	if _, err := New(c, nil, &rebuild.Nix{}); err == nil || !strings.Contains(err.Error(), "reading release key") {
		t.Errorf("New with a missing release key = %v; want reading release key", err)
	}
}

// TestNewWithS3Cache: an s3:// builder.cacheURL gives the builder the
// bucket (uploaded to by the avalanche-s3 helper, staged in the state
// directory, emptied of what a crash left); a credentials file it cannot
// read or a helper it cannot run fails at start-up, naming the key.
func TestNewWithS3Cache(t *testing.T) {
	key, _ := gittest.NewSSHKey(t, t.TempDir(), "release")
	creds := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = GK1\naws_secret_access_key = s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(t.TempDir(), "avalanche-s3")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &config.Config{Hostname: "cardinal", StateDir: t.TempDir(), Builder: config.Builder{Enable: true,
		CacheURL:             "s3://fleet-cache?endpoint=possum.internal:3900&region=garage&scheme=http",
		CacheCredentialsFile: creds, S3Helper: helper, SigningKeyFile: "/k", ReleaseKeyFile: key}}
	stale := filepath.Join(c.StateDir, "builder-stage", "s3cache-123")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := New(c, nil, &rebuild.Nix{})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a stage left by a crash is still there after New: %v", err)
	}
	want := &S3Cache{Helper: helper, URL: c.Builder.CacheURL, CredentialsFile: creds, Nix: &rebuild.Nix{},
		StageDir: filepath.Join(c.StateDir, "builder-stage")}
	if diff := cmp.Diff(want, b.Cache); diff != "" {
		t.Errorf("New: Cache (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		key  string
		edit func(*config.Builder)
	}{
		{"builder.cacheCredentialsFile", func(b *config.Builder) { b.CacheCredentialsFile = filepath.Join(t.TempDir(), "missing") }},
		{"builder.s3Helper", func(b *config.Builder) { b.S3Helper = filepath.Join(t.TempDir(), "missing") }},
		{"builder.s3Helper", func(b *config.Builder) { b.S3Helper = creds }}, // not executable
		{"builder.s3Helper", func(b *config.Builder) { b.S3Helper = "" }},    // none next to the test binary
	} {
		broken := *c
		tt.edit(&broken.Builder)
		if _, err := New(&broken, nil, &rebuild.Nix{}); err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("New with %+v = %v; want an error naming %s", broken.Builder, err, tt.key)
		}
	}
}
