package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/release"
	"github.com/avalanche-fleet/avalanche/pkg/s3cache"
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
// bucket (uploaded to with the agent's S3 client, staged in the state
// directory, emptied of what a crash left); a credentials file it cannot read fails at start-up, naming
// the key.
func TestNewWithS3Cache(t *testing.T) {
	key, _ := gittest.NewSSHKey(t, t.TempDir(), "release")
	creds := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = GK1\naws_secret_access_key = s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &config.Config{Hostname: "cardinal", StateDir: t.TempDir(), Builder: config.Builder{Enable: true,
		CacheURL:             "s3://fleet-cache?endpoint=possum.internal:3900&region=garage&scheme=http",
		CacheCredentialsFile: creds, SigningKeyFile: "/k", ReleaseKeyFile: key}}
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
	if cache, ok := b.Cache.(*s3cache.Cache); !ok || cache.StageDir != filepath.Join(c.StateDir, "builder-stage") {
		t.Errorf("New: Cache = %#v; want the bucket, staged under the state directory", b.Cache)
	}
	c.Builder.CacheCredentialsFile = filepath.Join(t.TempDir(), "missing")
	if _, err := New(c, nil, &rebuild.Nix{}); err == nil || !strings.Contains(err.Error(), "builder.cacheCredentialsFile") {
		t.Errorf("New with missing S3 credentials = %v; want an error naming builder.cacheCredentialsFile", err)
	}
}
