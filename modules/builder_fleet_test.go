package modules

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// agentSettings is the part of a host's rendered agent config and Nix
// settings that builder mode decides.
type agentSettings struct {
	AgentConfig struct {
		Deploy struct {
			Source, BuilderFallback string
			Cache                   struct {
				URL        string
				PublicKeys []string
			}
		}
		Verify struct {
			AllowedSignersFile, BuilderSignersFile, BuilderPrincipal string
		}
		Builder struct {
			Enable                                   bool
			CacheURL, SigningKeyFile, ReleaseKeyFile string
		}
		Secrets struct{ Dir string }
	} `json:"agentConfig"`
	DistributedBuilds bool              `json:"distributedBuilds"`
	BuildMachines     []string          `json:"buildMachines"`
	KnownHosts        map[string]string `json:"knownHosts"`
}

// The fleet's builder mode, as each host's rendered agent config says: the
// Raspberry Pis and the VPS substitute releases from possum's cache (the
// k3s workers wait for the builder instead of evaluating), the others
// evaluate; cardinal alone has the builder role, offloading to the other
// builders and pushing to possum; every host trusts its release key for
// releases only.
func TestFleetBuilderMode(t *testing.T) {
	f := newFleet(t)
	var hosts []string
	f.mustEval(t, "hosts", &hosts)
	f.writeSecrets(t, hosts)
	keys := hostKeys(t)
	var cacheKey string
	if err := json.Unmarshal(nixEval(t, "(import "+repoRoot+"/nixos/lib/keys.nix).binaryCache"), &cacheKey); err != nil {
		t.Fatal(err)
	}
	builderMode := map[string]string{"mysecrets": "evaluate", "eagle": "evaluate", "possum": "evaluate", "exit-node": "evaluate"}
	for i := range 6 {
		builderMode[fmt.Sprintf("raccoon%02d", i)] = "wait"
	}
	var signersFile string
	for _, h := range hosts {
		t.Run(h, func(t *testing.T) {
			var s agentSettings
			f.mustEval(t, fmt.Sprintf("report %q", h), &s)
			c := s.AgentConfig
			signersFile = cmpOr(signersFile, c.Verify.AllowedSignersFile)
			if c.Verify.AllowedSignersFile != signersFile || c.Verify.BuilderSignersFile != "" || c.Verify.BuilderPrincipal != "builder" {
				t.Errorf("verify = %+v; want the fleet's allowed signers %s, principal builder", c.Verify, signersFile)
			}
			fallback, small := builderMode[h]
			switch {
			case small && (c.Deploy.Source != "builder" || c.Deploy.BuilderFallback != fallback):
				t.Errorf("deploy.source %q, builderFallback %q; want builder, %s", c.Deploy.Source, c.Deploy.BuilderFallback, fallback)
			case small && (!strings.HasSuffix(c.Deploy.Cache.URL, ":5000") || !strings.Contains(c.Deploy.Cache.URL, "possum") ||
				!slices.Equal(c.Deploy.Cache.PublicKeys, []string{cacheKey})):
				t.Errorf("deploy.cache = %+v; want possum's cache and its key %s", c.Deploy.Cache, cacheKey)
			case !small && c.Deploy.Source != "local":
				t.Errorf("deploy.source %q; want local evaluation", c.Deploy.Source)
			}
			if c.Builder.Enable != (h == "cardinal") {
				t.Errorf("builder.enable = %v; want the builder role on cardinal only", c.Builder.Enable)
			}
			if h == "cardinal" {
				checkReleaseBuilder(t, s, keys)
			}
		})
	}
	var signers string
	if err := json.Unmarshal(nixEval(t, "import "+repoRoot+"/nixos/lib/signers.nix"), &signers); err != nil {
		t.Fatal(err)
	}
	want := `builder namespaces="avalanche-release" ` + keys["cardinal"] + "\n"
	if !strings.Contains(signers, want) || strings.Count(signers, "avalanche-release") != 1 {
		t.Errorf("allowed signers:\n%s\nwant exactly one release signer, cardinal's host key: %q", signers, want)
	}
	for _, l := range strings.Split(strings.TrimSpace(signers), "\n") {
		if !strings.Contains(l, `namespaces="git"`) && !strings.Contains(l, `namespaces="avalanche-release"`) {
			t.Errorf("allowed signers line %q is not limited to one namespace", l)
		}
	}
}

// checkReleaseBuilder checks the builder role on cardinal.
func checkReleaseBuilder(t *testing.T, s agentSettings, keys map[string]string) {
	t.Helper()
	b := s.AgentConfig.Builder
	if !strings.HasPrefix(b.CacheURL, "ssh-ng://nix-ssh@possum.internal") || b.ReleaseKeyFile != "/etc/ssh/ssh_host_ed25519_key" || s.AgentConfig.Secrets.Dir == "" ||
		!strings.HasPrefix(b.SigningKeyFile, s.AgentConfig.Secrets.Dir+"/") {
		t.Errorf("builder = %+v; want possum over ssh-ng, the host key signing releases, the cache key an agent secret under %s",
			b, s.AgentConfig.Secrets.Dir)
	}
	want := []string{"beacon.internal", "opi01.internal", "opi02.internal", "opi03.internal"}
	got := slices.Sorted(slices.Values(s.BuildMachines))
	if !s.DistributedBuilds || !cmp.Equal(want, got) {
		t.Errorf("distributedBuilds %v, buildMachines %q; want the other builders %q", s.DistributedBuilds, got, want)
	}
	for _, m := range append(want, "possum.internal") {
		name := strings.TrimSuffix(m, ".internal")
		if s.KnownHosts[name] != keys[name] {
			t.Errorf("programs.ssh.knownHosts.%s = %q; want its host key", name, s.KnownHosts[name])
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
