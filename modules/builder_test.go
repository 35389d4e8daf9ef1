package modules

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Builder mode through the module: what render.nix makes of the options
// passes the agent's parser, and the defaults render as the agent's own.
func TestRenderBuilderMode(t *testing.T) {
	const key = "possum-1:DZYU+a3kHdAtCxsRzThRY0vNTAkkv48kTRBUnVM/dBw="
	tests := []struct {
		name, options, wantErr string
	}{
		{"defaults", `{ hostname = "opi01"; repository.url = "https://git.internal/x.git"; }`, ""},
		{"a pi in builder mode", `{
			hostname = "raccoon00";
			repository.url = "https://git.internal/x.git";
			verify.allowedSignersFile = "/nix/store/00000000000000000000000000000000-allowed-signers";
			deploy = { source = "builder"; builderFallback = "wait"; builderTimeout = "1h";
			           cache = { url = "http://possum.internal:5000"; publicKeys = [ "` + key + `" ]; }; };
		}`, ""},
		{"the builder", `{
			hostname = "cardinal";
			repository.url = "https://git.internal/x.git";
			builder = { enable = true; cacheURL = "ssh-ng://nix-ssh@possum.internal"; parallelism = 3;
			            signingKeyFile = "/run/secrets/cache-key"; releaseKeyFile = "/run/secrets/release-key"; };
		}`, ""},
		{"the builder uploading to possum's Garage", `{
			hostname = "cardinal";
			repository.url = "https://git.internal/x.git";
			builder = { enable = true; cacheURL = "s3://fleet-cache?endpoint=possum.internal:3900&region=garage&scheme=http";
			            cacheCredentialsFile = "/run/secrets/cache-s3"; s3Helper = "/opt/avalanche/bin/avalanche-s3";
			            signingKeyFile = "/run/secrets/cache-key"; releaseKeyFile = "/run/secrets/release-key"; };
		}`, ""},
		{"an S3 helper that is not a path", `{
			hostname = "cardinal";
			repository.url = "https://git.internal/x.git";
			builder = { enable = true; cacheURL = "s3://fleet-cache?endpoint=possum.internal:3900";
			            cacheCredentialsFile = "/run/secrets/cache-s3"; s3Helper = "avalanche-s3";
			            signingKeyFile = "/run/secrets/cache-key"; releaseKeyFile = "/run/secrets/release-key"; };
		}`, `builder.s3Helper must be an absolute path, got "avalanche-s3"`},
		{"an S3 cache without its keys", `{
			hostname = "cardinal";
			repository.url = "https://git.internal/x.git";
			builder = { enable = true; cacheURL = "s3://fleet-cache?endpoint=possum.internal:3900";
			            signingKeyFile = "/run/secrets/cache-key"; releaseKeyFile = "/run/secrets/release-key"; };
		}`, "builder.cacheCredentialsFile must be an absolute path"},
		{"a cache that trusts anything", `{
			hostname = "raccoon00";
			repository.url = "https://git.internal/x.git";
			verify.allowedSignersFile = "/nix/store/00000000000000000000000000000000-allowed-signers";
			deploy = { source = "builder"; cache = { url = "http://possum.internal:5000?trusted=1"; publicKeys = [ "` + key + `" ]; }; };
		}`, "sets trusted=1"},
		{"builder mode without commit signers", `{
			hostname = "raccoon00";
			repository.url = "https://git.internal/x.git";
			deploy = { source = "builder"; cache = { url = "http://possum.internal:5000"; publicKeys = [ "` + key + `" ]; }; };
		}`, "verify.allowedSignersFile (or verify.gpgKeyFiles) must say who may sign commits"},
		{"builder mode without a cache", `{
			hostname = "raccoon00"; repository.url = "https://git.internal/x.git"; deploy.source = "builder";
		}`, "deploy.cache.url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := nixEval(t, renderExpr(tt.options))
			err := checkConfig(t, out)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("check-config(render) = %v; want ok\nconfig: %s", err, out)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("check-config(render) = %v; want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestRenderBuilderDefaults(t *testing.T) {
	out := nixEval(t, renderExpr(`{ hostname = "opi01"; repository.url = "https://git.internal/x.git"; }`))
	var got struct {
		Deploy struct {
			Source, BuilderTimeout, BuilderFallback string
			Cache                                   struct{ URL string }
		}
		Verify  struct{ BuilderPrincipal, BuilderSignersFile string }
		Builder struct {
			Enable      bool
			Parallelism int
			HostTimeout string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := got
	want.Deploy.Source, want.Deploy.BuilderTimeout, want.Deploy.BuilderFallback, want.Deploy.Cache.URL = "local", "30m", "evaluate", ""
	want.Verify.BuilderPrincipal, want.Verify.BuilderSignersFile = "builder", ""
	want.Builder.Enable, want.Builder.Parallelism, want.Builder.HostTimeout = false, 2, "4h"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rendered builder defaults (-want +got):\n%s", diff)
	}
}
