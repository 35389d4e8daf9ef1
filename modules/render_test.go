package modules

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
	"github.com/google/go-cmp/cmp"
)

// checkConfig runs `avalanche-agent check-config` on the JSON in data.
func checkConfig(t *testing.T, data []byte) error {
	t.Helper()
	if agentErr != nil {
		t.Fatalf("the contract test needs the agent binary: %v", agentErr)
	}
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := run([]string{agentBin, "check-config", file})
	return err
}

// The contract between the module and the agent: whatever render.nix makes
// of an option set, the agent's strict parser accepts; and what it must
// reject (a bad free-form key) still fails there.
func TestRenderedConfigPassesCheckConfig(t *testing.T) {
	tests := []struct {
		name    string
		options string
		wantErr string // substring of check-config's error; "" means valid
	}{
		{
			name:    "minimal https",
			options: `{ hostname = "eagle"; repository.url = "https://git.internal/fleet/avalanche.git"; }`,
		},
		{
			name: "global profile ssh with signers and status",
			options: `{
				hostname = "raccoon00";
				repository = {
					url = "forgejo@eagle.internal:fleet/avalanche.git";
					sshKeyFile = "/etc/ssh/ssh_host_ed25519_key";
					knownHostsFile = "/nix/store/00000000000000000000000000000000-eagle-known-hosts";
				};
				verify.allowedSignersFile = "/nix/store/00000000000000000000000000000000-allowed-signers";
				statusListen = "0.0.0.0:9123";
				metricsListen = "127.0.0.1:9464";
				deploy.reboot = { enable = true; window = "03:00-05:00"; };
			}`,
		},
		{
			name: "workstation boots, polls slowly",
			options: `{
				hostname = "calypso";
				repository.url = "https://git.internal/fleet/avalanche.git";
				repository.tokenFile = "/var/lib/avalanche-agent/token";
				deploy = { action = "boot"; healthChecks = [ ]; };
				pollInterval = "15m";
				logLevel = "debug";
			}`,
		},
		{
			name: "exit node",
			options: `{
				hostname = "exit-node";
				repository.url = "/srv/fleet.git";
				exitNode = { enable = true; authKeyFile = "/run/secrets/tailscale-auth-key"; apiKeyFile = "/run/secrets/tailscale-api-key"; };
				decryption.ageKeyFiles = [ "/var/lib/avalanche-agent/age.key" ];
			}`,
		},
		{
			name: "home ip watcher with free-form webhook",
			options: `{
				hostname = "routy";
				repository.url = "https://git.internal/fleet/avalanche.git";
				homeIP = { enable = true; tokenFile = "/run/secrets/hcloud-token"; wanInterface = "enp1s0"; };
				settings.webhook = { listen = "127.0.0.1:9465"; secretFile = "/run/secrets/webhook"; };
			}`,
		},
		{
			name: "forge on this machine over http, swap accepted",
			options: `{
				hostname = "eagle";
				repository = { url = "http://127.0.0.1:3000/fleet/avalanche.git"; tokenFile = "/run/secrets/forgejo-token"; allowInsecureHTTP = true; };
				decryption.allowSwappable = true;
			}`,
		},
		{
			name: "forge commit statuses",
			options: `{
				hostname = "raccoon00";
				repository = { url = "forgejo@eagle.internal:fleet/avalanche.git"; sshKeyFile = "/etc/ssh/ssh_host_ed25519_key"; knownHostsFile = "/etc/ssh/known_hosts"; };
				report.forge = { url = "https://git.internal"; tokenFile = "/run/secrets/forge-token"; };
			}`,
		},
		{
			name:    "forge reporting without a token is refused by the agent",
			options: `{ hostname = "eagle"; repository.url = "https://git.internal/x.git"; report.forge.url = "https://git.internal"; }`,
			wantErr: "report.forge.tokenFile is required",
		},
		{
			name:    "token over plain http is refused by the agent",
			options: `{ hostname = "eagle"; repository = { url = "http://git.internal/x.git"; tokenFile = "/run/secrets/t"; }; }`,
			wantErr: "plain http",
		},
		{
			name:    "unknown free-form key is rejected by the agent",
			options: `{ hostname = "eagle"; repository.url = "https://git.internal/x.git"; settings.deploy.colour = "blue"; }`,
			wantErr: "colour",
		},
		{
			name:    "free-form value the agent validates",
			options: `{ hostname = "eagle"; repository.url = "https://git.internal/x.git"; settings.deploy.action = "reboot"; }`,
			wantErr: "deploy.action",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := nixEval(t, renderExpr(tt.options))
			err := checkConfig(t, out)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("check-config(render %s) = %v; want ok\nconfig: %s", tt.options, err, out)
			case tt.wantErr != "" && err == nil:
				t.Errorf("check-config(render %s) = ok; want an error mentioning %q", tt.options, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("check-config(render %s) = %v; want an error mentioning %q", tt.options, err, tt.wantErr)
			}
		})
	}
}

// The renderer's own decisions: derived defaults, "" for unset paths, fixed
// directories, and settings winning over typed options.
func TestRenderDerivedValues(t *testing.T) {
	out := nixEval(t, renderExpr(`{
		hostname = "opi01";
		repository.url = "https://git.internal/x.git";
		deploy.confirmTimeout = "5m";
		settings.deploy.confirmTimeout = "7m";
		settings.statusListen = "127.0.0.1:9123";
	}`))
	var got struct {
		FlakeOutput  string `json:"flakeOutput"`
		StatusListen string `json:"statusListen"`
		StateDir     string `json:"stateDir"`
		RuntimeDir   string `json:"runtimeDir"`
		Repository   struct {
			TestingBranch string `json:"testingBranch"`
			TokenFile     string `json:"tokenFile"`
		} `json:"repository"`
		Deploy struct {
			ConfirmTimeout string   `json:"confirmTimeout"`
			HealthChecks   []string `json:"healthChecks"`
		} `json:"deploy"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decoding rendered config: %v\n%s", err, out)
	}
	want := got
	want.FlakeOutput = "opi01"
	want.StatusListen = "127.0.0.1:9123"
	want.StateDir = "/var/lib/avalanche-agent"
	want.RuntimeDir = "/run/avalanche-agent"
	want.Repository.TestingBranch = "testing/opi01"
	want.Repository.TokenFile = ""
	want.Deploy.ConfirmTimeout = "7m"
	want.Deploy.HealthChecks = []string{} // the default: the agent judges failed units itself
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("render mismatch (-want +got):\n%s", diff)
	}
}

// The manifest is what pkg/secrets reads from the built system: it must pass
// the real strict parser, and a changed secret file must change its store
// path (so the system closure changes and the agent redeploys).
func TestSecretsManifest(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secrets.yaml")
	writeFile(t, file, "k3s:\n  token: ENC[AES256_GCM,data:one]\n")
	expr := `import ` + agentDir + `/manifest.nix {
		k3s-token = { sopsFile = ` + file + `; key = "k3s/token"; restartUnits = [ "k3s.service" ]; };
		garage-env = { sopsFile = ` + file + `; format = "dotenv"; key = ""; owner = "garage"; group = "garage"; mode = "0440"; reloadUnits = [ "garage.service" ]; };
		ca-cert = { sopsFile = ` + file + `; format = "binary"; };
	}`
	out := nixEval(t, expr)
	m, err := secrets.ParseManifest(out)
	if err != nil {
		t.Fatalf("secrets.ParseManifest(render) = %v\n%s", err, out)
	}
	store := m.Secrets[0].SopsFile
	if !strings.HasPrefix(store, "/nix/store/") || !strings.HasSuffix(store, "-secrets.yaml") {
		t.Fatalf("sopsFile = %q; want a /nix/store/...-secrets.yaml path", store)
	}
	want := &secrets.Manifest{Version: 1, Secrets: []secrets.Secret{
		{Name: "ca-cert", SopsFile: store, Key: "", Format: "binary", Owner: "root", Group: "root", Mode: "0400", RestartUnits: []string{}, ReloadUnits: []string{}},
		{Name: "garage-env", SopsFile: store, Key: "", Format: "dotenv", Owner: "garage", Group: "garage", Mode: "0440", RestartUnits: []string{}, ReloadUnits: []string{"garage.service"}},
		{Name: "k3s-token", SopsFile: store, Key: "k3s/token", Format: "yaml", Owner: "root", Group: "root", Mode: "0400", RestartUnits: []string{"k3s.service"}, ReloadUnits: []string{}},
	}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("manifest mismatch (-want +got):\n%s", diff)
	}

	writeFile(t, file, "k3s:\n  token: ENC[AES256_GCM,data:two]\n")
	m2, err := secrets.ParseManifest(nixEval(t, expr))
	if err != nil {
		t.Fatalf("secrets.ParseManifest(render after edit) = %v", err)
	}
	if m2.Secrets[0].SopsFile == store {
		t.Errorf("sopsFile stayed %q after the secret changed; want a new store path", store)
	}
}

func TestSecretsManifestRejectsNonStoreString(t *testing.T) {
	requireTool(t, "nix-instantiate")
	expr := `import ` + agentDir + `/manifest.nix { x = { sopsFile = "/home/me/secret.yaml"; }; }`
	_, err := run([]string{"nix-instantiate", "--eval", "--strict", "--json", "--readonly-mode", "-E", expr})
	if err == nil || !strings.Contains(err.Error(), "sopsFile must be a path literal") {
		t.Errorf("manifest with a plain string sopsFile = %v; want the 'sopsFile must be a path literal' error", err)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Services that read secrets are ordered after the agent (it is READY only
// once the running system's secrets are installed): every .service named in
// restartUnits or reloadUnits, once each.
func TestSecretConsumers(t *testing.T) {
	out := nixEval(t, `import `+agentDir+`/consumers.nix {
		a = { restartUnits = [ "db.service" "k3s.socket" ]; };
		b = { reloadUnits = [ "web.service" "db.service" ]; };
		c = { };
	}`)
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"db", "web"}, got); diff != "" {
		t.Errorf("consumers (-want +got):\n%s", diff)
	}
}
