package builder

import (
	"path/filepath"
	"strings"
	"testing"

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
