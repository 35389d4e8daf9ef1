package config

import (
	"strings"
	"testing"
	"time"
)

const (
	base     = `"version":1,"hostname":"raccoon00","repository":{"url":"/srv/avalanche.git"}`
	cacheKey = "possum-1:DZYU+a3kHdAtCxsRzThRY0vNTAkkv48kTRBUnVM/dBw="
)

func TestBuilderDefaults(t *testing.T) {
	c, err := Parse([]byte(`{` + base + `}`))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if c.Deploy.Source != SourceLocal || c.Deploy.FromBuilder() || c.Deploy.BuilderFallback != FallbackEvaluate ||
		c.Deploy.BuilderTimeout.D() != 30*time.Minute || c.Verify.BuilderPrincipal != "builder" ||
		c.Builder.Parallelism != 2 || c.Builder.HostTimeout.D() != 4*time.Hour {
		t.Errorf("defaults: deploy %+v, verify %+v, builder %+v", c.Deploy, c.Verify, c.Builder)
	}
}

func TestBuilderModeHost(t *testing.T) {
	c, err := Parse([]byte(`{` + base + `,
  "deploy": {"source": "builder", "builderTimeout": "10m", "builderFallback": "wait",
             "cache": {"url": "http://possum.internal:5000", "publicKeys": ["` + cacheKey + `"]}},
  "verify": {"allowedSignersFile": "/etc/avalanche-agent/allowed_signers"}}`))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if !c.Deploy.FromBuilder() || c.Verify.ReleaseSignersFile() != "/etc/avalanche-agent/allowed_signers" {
		t.Errorf("deploy %+v, release signers %q", c.Deploy, c.Verify.ReleaseSignersFile())
	}
}

func TestBuilderRole(t *testing.T) {
	_, err := Parse([]byte(`{` + base + `,
  "builder": {"enable": true, "cacheURL": "s3://nix-cache?endpoint=possum.internal:3900&region=garage", "cacheCredentialsFile": "/run/secrets/cache-s3",
              "signingKeyFile": "/run/secrets/cache-key", "releaseKeyFile": "/run/secrets/release-key", "parallelism": 3}}`))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
}

func TestBuilderProblems(t *testing.T) {
	_, err := Parse([]byte(`{` + base + `,
  "deploy": {"source": "builder", "builderFallback": "pray", "builderTimeout": "1ms",
             "cache": {"url": "ftp://possum", "publicKeys": ["possum-1:short"]}},
  "verify": {"builderPrincipal": "builder,ci", "builderSignersFile": "signers"},
  "builder": {"enable": true, "cacheURL": "file://relative", "signingKeyFile": "key", "parallelism": -1}}`))
	if err == nil {
		t.Fatal("Parse = nil; want errors")
	}
	for _, want := range []string{
		`deploy.builderFallback "pray" is not one of evaluate, wait`,
		"deploy.builderTimeout 1ms is shorter than 1s",
		`verify.builderPrincipal "builder,ci" must be one principal name`,
		`verify.builderSignersFile "signers" must be an absolute path`,
		`deploy.cache.url: "ftp://possum": scheme must be https, http, s3, ssh-ng, ssh or file`,
		`deploy.cache.publicKeys[0]: cache key "possum-1:short"`,
		`builder.cacheURL: "file://relative": a file:// cache needs an absolute path`,
		`builder.enable needs builder.signingKeyFile as an absolute path, got "key"`,
		`builder.enable needs builder.releaseKeyFile as an absolute path, got ""`,
		"builder.parallelism -1 must be at least 1",
		`builder.enable: the builder evaluates every host itself; set deploy.source to "local"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Parse error lacks %q:\n%v", want, err)
		}
	}
}

// TestBuilderS3Cache: an s3:// builder.cacheURL needs its endpoint and a
// credentials file, and a helper named must be an absolute path; each
// problem names the key.
func TestBuilderS3Cache(t *testing.T) {
	role := func(cache string) string {
		return `{` + base + `, "builder": {"enable": true, ` + cache + `,
  "signingKeyFile": "/run/secrets/cache-key", "releaseKeyFile": "/run/secrets/release-key"}}`
	}
	tests := []struct {
		name, cache, want string
	}{
		{"ok", `"cacheURL": "s3://nix-cache?endpoint=possum.internal:3900&region=garage", "cacheCredentialsFile": "/run/secrets/s3"`, ""},
		{"helper", `"cacheURL": "s3://nix-cache?endpoint=possum.internal:3900", "cacheCredentialsFile": "/run/secrets/s3", "s3Helper": "/opt/bin/avalanche-s3"`, ""},
		{"relative helper", `"cacheURL": "s3://nix-cache?endpoint=possum.internal:3900", "cacheCredentialsFile": "/run/secrets/s3", "s3Helper": "avalanche-s3"`,
			`builder.s3Helper must be an absolute path, got "avalanche-s3"`},
		{"no credentials", `"cacheURL": "s3://nix-cache?endpoint=possum.internal:3900"`,
			`builder.cacheURL is s3://: builder.cacheCredentialsFile must be an absolute path`},
		{"relative credentials", `"cacheURL": "s3://nix-cache?endpoint=possum.internal:3900", "cacheCredentialsFile": "s3"`,
			`builder.cacheCredentialsFile must be an absolute path to the bucket's keys (AWS shared-credentials format), got "s3"`},
		{"no endpoint", `"cacheURL": "s3://nix-cache?region=garage", "cacheCredentialsFile": "/run/secrets/s3"`,
			`builder.cacheURL: "s3://nix-cache?region=garage" needs endpoint=HOST[:PORT]`},
		{"bad scheme", `"cacheURL": "s3://nix-cache?endpoint=possum:3900&scheme=ftp", "cacheCredentialsFile": "/run/secrets/s3"`,
			`builder.cacheURL: "s3://nix-cache?endpoint=possum:3900&scheme=ftp": scheme must be https or http`},
		{"credentials without s3", `"cacheURL": "file:///srv/cache", "cacheCredentialsFile": "/run/secrets/s3"`,
			`builder.cacheCredentialsFile is set but builder.cacheURL "file:///srv/cache" is not s3://`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(role(tt.cache)))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse = %v; want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestBuilderModeNeedsCacheAndTrust(t *testing.T) {
	_, err := Parse([]byte(`{` + base + `, "deploy": {"source": "builder", "cache": {"url": "https://cache.example"}}}`))
	for _, want := range []string{
		"deploy.cache.publicKeys needs the cache's public key",
		"releases are checked against verify.builderSignersFile",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse error lacks %q:\n%v", want, err)
		}
	}
}

// The release branch is fetched with main where releases are read or
// written, and nowhere else.
func TestTrackedBranches(t *testing.T) {
	tests := []struct {
		name, extra string
		want        []string
	}{
		{"local evaluation", `"repository":{"url":"/srv/a.git"}`,
			[]string{"main", "testing/raccoon00"}},
		{"builder mode", `"repository":{"url":"/srv/a.git"},"verify":{"allowedSignersFile":"/etc/s"},
			"deploy":{"source":"builder","cache":{"url":"http://possum:5000","publicKeys":["` + cacheKey + `"]}}`,
			[]string{"main", "testing/raccoon00", "avalanche/releases"}},
		{"the builder", `"repository":{"url":"/srv/a.git"},"builder":{"enable":true,"cacheURL":"file:///c",
			"signingKeyFile":"/k","releaseKeyFile":"/r"}`, []string{"main", "testing/raccoon00", "avalanche/releases"}},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(`{"version":1,"hostname":"raccoon00",` + tt.extra + `}`))
		if err != nil {
			t.Fatalf("%s: Parse = %v", tt.name, err)
		}
		if got := c.TrackedBranches(); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: TrackedBranches() = %q; want %q", tt.name, got, tt.want)
		}
	}
}

// TestBuilderModeRefusesWhatBreaksTheChain: a cache URL that turns off
// Nix's signature check, and builder mode with nobody allowed to sign
// commits (the chain of trust would start at the release), are refused
// with an error naming the setting.
func TestBuilderModeRefusesWhatBreaksTheChain(t *testing.T) {
	const signers = `"verify": {"allowedSignersFile": "/etc/avalanche-agent/allowed_signers"}`
	tests := []struct {
		name, config, want string
	}{
		{"trusted=1", `"deploy": {"source": "builder", "cache": {"url": "http://possum.internal:5000?trusted=1", "publicKeys": ["` +
			cacheKey + `"]}}, ` + signers, `deploy.cache.url: "http://possum.internal:5000?trusted=1" sets trusted=1`},
		{"trusted=true", `"deploy": {"source": "builder", "cache": {"url": "s3://nix?endpoint=possum:3900&trusted=true", "publicKeys": ["` +
			cacheKey + `"]}}, ` + signers, "sets trusted=true, which turns off Nix's signature check"},
		{"no commit signers", `"deploy": {"source": "builder", "cache": {"url": "http://possum.internal:5000", "publicKeys": ["` +
			cacheKey + `"]}}, "verify": {"builderSignersFile": "/etc/avalanche-agent/builder_signers"}`,
			"deploy.source is builder: verify.allowedSignersFile (or verify.gpgKeyFiles) must say who may sign commits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(`{` + base + `, ` + tt.config + `}`))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v; want an error mentioning %q", err, tt.want)
			}
		})
	}
}
