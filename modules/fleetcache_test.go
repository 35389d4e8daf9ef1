package modules

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
	"github.com/avalanche-fleet/avalanche/pkg/secrets/secretstest"
)

// cacheReport is the part of a host's report the fleet cache decides.
type cacheReport struct {
	AgentConfig json.RawMessage `json:"agentConfig"`
	Manifest    json.RawMessage `json:"manifest"`
	Substitutes []string        `json:"substituters"`
	Hook        *string         `json:"postBuildHook"`
	AfterAgent  []string        `json:"afterAgent"`
}

// cacheConfig is what the agent reads of the fleet cache.
type cacheConfig struct {
	Deploy struct {
		Source string
		Cache  struct{ URL string }
	}
	Builder struct {
		Enable                         bool
		CacheURL, CacheCredentialsFile string
	}
	Secrets struct{ Dir string }
}

// fleetCacheWant is what every host must say under one backend.
type fleetCacheWant struct {
	backend          string
	hostURL, tailURL string // deploy.cache.url and the first substituter
	builderURL       string
	credentials      bool // cardinal reads cache/s3-credentials
	hook             bool // builders push to possum after each build
}

// The fleet cache is one switch, nixos/lib/fleet-cache.nix's backend:
// under each value every host of the inventory agrees on it. The release
// builder uploads where the hosts substitute from (the bucket of its s3://
// URL is the one Garage's web endpoint serves the hosts), with its keys only
// on Garage; builder-mode hosts and every host's Nix read that cache; the
// post-build hook pushes to possum only on harmonia; possum declares the
// bucket's key and its set-up unit only on Garage. Under "garage" every
// rendered agent config passes check-config and the new secrets decrypt.
func TestFleetCacheSwitch(t *testing.T) {
	for _, w := range []fleetCacheWant{
		{backend: "harmonia", hostURL: "http://possum.internal:5000", tailURL: "http://possum.tailnet-name.ts.net:5000",
			builderURL: "ssh-ng://nix-ssh@possum.internal?ssh-key=/etc/ssh/ssh_host_ed25519_key", hook: true},
		{backend: "garage", hostURL: "http://fleet-cache.web.internal:3902", tailURL: "http://possum.tailnet-name.ts.net:3902",
			builderURL: "s3://fleet-cache?endpoint=possum.internal:3900&region=garage&scheme=http", credentials: true},
	} {
		t.Run(w.backend, func(t *testing.T) {
			f := newFleet(t)
			if w.backend != "harmonia" {
				f.edit(t, "nixos/lib/fleet-cache.nix", `backend = "harmonia";`, `backend = "`+w.backend+`";`)
			}
			var hosts []string
			f.mustEval(t, "hosts", &hosts)
			keyFile, plans := f.writeSecrets(t, hosts)
			var reports map[string]cacheReport
			f.mustEval(t, "reports", &reports)
			inv := inventoryHosts(t)
			for _, h := range hosts {
				checkHostCache(t, h, w, reports[h], slices.Contains(inv[h].Roles, "builder"))
			}
			checkPossumCache(t, w, reports["possum"])
			if w.backend != "garage" {
				return
			}
			checkS3Matches(t, w)
			ids, err := secrets.LoadIdentities([]string{keyFile}, nil)
			if err != nil {
				t.Fatal(err)
			}
			dec := &secrets.Decrypter{Helper: secretstest.Helper(t)}
			for _, h := range []string{"cardinal", "possum"} {
				checkSecrets(t, h, reports[h].Manifest, plans[h], dec, ids)
			}
			for _, h := range hosts {
				if err := checkConfig(t, reports[h].AgentConfig); err != nil {
					t.Errorf("%s on %s: the rendered agent config fails check-config: %v", h, w.backend, err)
				}
			}
		})
	}
}

// checkHostCache checks one host's agent config, Nix substituters and
// post-build hook against the backend.
func checkHostCache(t *testing.T, h string, w fleetCacheWant, r cacheReport, builderRole bool) {
	t.Helper()
	var c cacheConfig
	if err := json.Unmarshal(r.AgentConfig, &c); err != nil {
		t.Fatalf("%s: %v", h, err)
	}
	want := w.hostURL
	if h == "exit-node" {
		want = w.tailURL
	}
	if len(r.Substitutes) == 0 || r.Substitutes[0] != want {
		t.Errorf("%s on %s: nix.settings.substituters = %q; want %s first", h, w.backend, r.Substitutes, want)
	}
	if c.Deploy.Source == "builder" && c.Deploy.Cache.URL != want {
		t.Errorf("%s on %s: deploy.cache.url = %q; want %s", h, w.backend, c.Deploy.Cache.URL, want)
	}
	if c.Builder.Enable {
		credentials := c.Builder.CacheCredentialsFile == c.Secrets.Dir+"/cache-s3-credentials"
		if c.Builder.CacheURL != w.builderURL || credentials != w.credentials ||
			(!w.credentials && c.Builder.CacheCredentialsFile != "") {
			t.Errorf("%s on %s: builder.cacheURL %q, cacheCredentialsFile %q; want %s, the agent secret cache-s3-credentials: %v",
				h, w.backend, c.Builder.CacheURL, c.Builder.CacheCredentialsFile, w.builderURL, w.credentials)
		}
	}
	if builderRole && (r.Hook != nil) != w.hook {
		t.Errorf("%s on %s: a post-build hook: %v; want %v", h, w.backend, r.Hook != nil, w.hook)
	}
	if names := secretNames(t, r.Manifest); slices.Contains(names, "cache-s3-credentials") != (w.credentials && c.Builder.Enable) {
		t.Errorf("%s on %s: secrets %q; want cache-s3-credentials on the release builder only on garage", h, w.backend, names)
	}
}

// checkPossumCache: possum needs the bucket's key, and runs its set-up,
// only on Garage; harmonia serves its store under both.
func checkPossumCache(t *testing.T, w fleetCacheWant, r cacheReport) {
	t.Helper()
	names := secretNames(t, r.Manifest)
	if slices.Contains(names, "garage-fleet-cache-key") != w.credentials || !slices.Contains(names, "harmonia-sign-key") {
		t.Errorf("possum on %s: secrets %q; want garage-fleet-cache-key: %v, and harmonia-sign-key", w.backend, names, w.credentials)
	}
	if slices.Contains(r.AfterAgent, "garage-fleet-cache") != w.credentials || !slices.Contains(r.AfterAgent, "harmonia") {
		t.Errorf("possum on %s: units after the agent %q; want garage-fleet-cache: %v, and harmonia", w.backend, r.AfterAgent, w.credentials)
	}
}

// checkS3Matches: the bucket the builder uploads to is the one whose web
// endpoint the hosts read, on the host that serves it.
func checkS3Matches(t *testing.T, w fleetCacheWant) {
	t.Helper()
	up, err := url.Parse(w.builderURL)
	if err != nil {
		t.Fatal(err)
	}
	down, err := url.Parse(w.hostURL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(down.Hostname(), up.Host+".web.") || !strings.HasPrefix(up.Query().Get("endpoint"), "possum.") {
		t.Errorf("the builder uploads to bucket %s at %s; the hosts read %s", up.Host, up.Query().Get("endpoint"), w.hostURL)
	}
}

func secretNames(t *testing.T, raw []byte) []string {
	t.Helper()
	m, err := secrets.ParseManifest(raw)
	if err != nil {
		t.Fatalf("secrets.ParseManifest = %v\n%s", err, raw)
	}
	var names []string
	for _, s := range m.Secrets {
		names = append(names, s.Name)
	}
	return names
}
