package modules

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// wavesExpr evaluates nixos/lib/waves.nix for the real inventory and policy.
func wavesExpr(policy string) string {
	lib := filepath.Join(repoRoot, "nixos", "lib")
	return fmt.Sprintf("import %s/waves.nix { inventory = import %s/inventory.nix; policy = %s; }", lib, lib, policy)
}

// The fleet's own policy gives every inventory host a wave, with at least
// one canary (wave 0) per group, and the rendered config of every host
// passes the agent's check-config with the whole table.
func TestFleetWaves(t *testing.T) {
	var got struct {
		Waves   map[string]int    `json:"waves"`
		Soak    string            `json:"soak"`
		Groups  map[string]string `json:"groups"`
		Budgets map[string]int    `json:"budgets"`
		Windows map[string]string `json:"windows"`
		Lease   struct {
			Anchor string `json:"anchor"`
			TTL    string `json:"ttl"`
		} `json:"lease"`
	}
	out := nixEval(t, wavesExpr("import "+filepath.Join(repoRoot, "nixos", "lib", "rollout.nix")))
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	var inv map[string]host
	if err := json.Unmarshal(nixEval(t, "import "+filepath.Join(repoRoot, "nixos", "lib", "inventory.nix")), &inv); err != nil {
		t.Fatal(err)
	}
	canary := map[string]bool{}
	for name, h := range inv {
		w, ok := got.Waves[name]
		if !ok {
			t.Errorf("waves: %s has no wave", name)
		}
		canary[h.Roles[0]] = canary[h.Roles[0]] || w == 0
	}
	for role, ok := range canary {
		if !ok {
			t.Errorf("waves: role %s has no canary in wave 0: %v", role, got.Waves)
		}
	}
	if got.Waves["raccoon00"] != 0 || got.Waves["raccoon01"] != 2 || got.Waves["opi02"] != 1 || got.Waves["eagle"] != 2 {
		t.Errorf("waves = %v; want raccoon00 0, opi02 1, raccoon01 2, eagle 2 (docs/rollouts.md's example)", got.Waves)
	}
	// etcd keeps its quorum with one of three servers down: never two.
	if got.Budgets["k3s-server"] != 1 || got.Groups["opi02"] != "k3s-server" || got.Windows["opi01"] == got.Windows["raccoon01"] {
		t.Errorf("budgets = %v, groups = %v, windows = %v; want k3s-server 1, opi02 in k3s-server, and wave 0 and 2 rebooting apart",
			got.Budgets, got.Groups, got.Windows)
	}
	table, _ := json.Marshal(got.Waves)
	budgets, _ := json.Marshal(got.Budgets)
	for _, name := range []string{"raccoon00", "raccoon03", "eagle", "opi02"} {
		opts := fmt.Sprintf(`{ hostname = %q; repository.url = "https://git.internal/fleet/avalanche.git";
			report.forge = { url = "https://git.internal"; tokenFile = "/run/secrets/forge-token"; };
			deploy.reboot.window = %q;
			rollout = { wave = %d; soak = %q; waves = builtins.fromJSON %s; group = %q; budgets = builtins.fromJSON %s;
				lease = { anchor = %q; ttl = %q; }; }; }`, name, got.Windows[name], got.Waves[name], got.Soak, nixString(string(table)),
			got.Groups[name], nixString(string(budgets)), got.Lease.Anchor, got.Lease.TTL)
		if err := checkConfig(t, nixEval(t, renderExpr(opts))); err != nil {
			t.Errorf("check-config(%s's rendered config) = %v", name, err)
		}
	}
}

func nixString(s string) string {
	b, _ := json.Marshal(s)
	return strings.ReplaceAll(string(b), "${", `\${`)
}

// Bad policies fail evaluation with an error that starts with the key.
func TestWavesRejectBadPolicy(t *testing.T) {
	bin := requireTool(t, "nix-instantiate")
	for _, tc := range []struct{ name, policy, want string }{
		{"host named twice", `{ canaries = [ "raccoon02" ]; hosts.raccoon02 = 1; }`, "rollout.hosts.raccoon02: raccoon02 is named twice (also in canaries)"},
		{"canary listed twice", `{ canaries = [ "opi02" "opi02" ]; }`, "rollout.canaries: opi02 is named twice"},
		{"two canaries of a role", `{ canaries = [ "opi02" "opi03" ]; }`, "rollout.canaries: opi02 and opi03 are both canaries of k3s-server"},
		{"cycle", `{ after = { k3s-agent = [ "k3s-server" ]; k3s-server = [ "k3s-agent" ]; }; }`, "rollout.after: cycle"},
		{"unknown host", `{ hosts.raccoon99 = 1; }`, `rollout.hosts.raccoon99: unknown host "raccoon99"`},
		{"unknown role", `{ after.k3s-agent = [ "k8s-server" ]; }`, `rollout.after.k3s-agent: unknown role "k8s-server"`},
		{"unknown group", `{ after.gpu = [ ]; }`, `rollout.after: unknown role "gpu"`},
		{"negative wave", `{ hosts.eagle = -1; }`, "rollout.hosts.eagle: -1 is not a wave"},
		{"role wave and after", `{ roles.k3s-agent = 3; after.k3s-agent = [ "k3s-server" ]; }`, "rollout.roles.k3s-agent: k3s-agent is named twice (also in after.k3s-agent)"},
		{"role wave of the canaries", `{ roles.server = 0; }`, "rollout.roles.server: 0 is not a wave after the canaries"},
		{"unknown role wave", `{ roles.gpu = 2; }`, `rollout.roles: unknown role "gpu"`},
		{"negative soak", `{ soak = "-5m"; }`, `rollout.soak: "-5m" is not a duration`},
		{"budget of 0", `{ budgets.k3s-server = 0; }`, "rollout.budgets.k3s-server: 0 is not a budget"},
		{"budget of an unknown group", `{ budgets.k8s-server = 1; }`, `rollout.budgets: unknown group "k8s-server"`},
		{"window of a wave nobody is in", `{ windows."7" = "02:00-03:00"; }`, "rollout.windows.7: no host is in wave 7"},
		{"window that is no window", `{ windows."0" = "2am"; }`, `rollout.windows.0: "2am" is not a time window`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin, "--eval", "--strict", "--json", "--readonly-mode", "-E", wavesExpr(tc.policy)).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("waves.nix with %s = %s, %v; want an error containing %q", tc.policy, out, err, tc.want)
			}
		})
	}
}

// The agent's check-config refuses a rendered rollout it cannot run, naming
// the key.
func TestCheckConfigRefusesBadRollout(t *testing.T) {
	base := `hostname = "raccoon01"; repository.url = "https://git.internal/fleet/avalanche.git";`
	forgeOn := `report.forge = { url = "https://git.internal"; tokenFile = "/run/secrets/forge-token"; };`
	for _, tc := range []struct{ name, options, want string }{
		{"gate without forge", `rollout = { wave = 1; waves = { raccoon00 = 0; raccoon01 = 1; }; };`, "rollout.wave is 1: set report.forge.url"},
		{"host not in the table", forgeOn + `rollout = { wave = 1; waves = { raccoon00 = 0; }; };`, "rollout.waves does not name this host"},
		{"wave disagrees with the table", forgeOn + `rollout = { wave = 1; waves = { raccoon00 = 0; raccoon01 = 2; }; };`, "rollout.wave is 1 but rollout.waves.raccoon01 is 2"},
		{"negative soak", forgeOn + `settings.rollout.soak = "-1m";`, `rollout.soak: "-1m0s" is negative`},
		{"negative wave", forgeOn + `settings.rollout.waves = { raccoon00 = -1; raccoon01 = 0; };`, "rollout.waves.raccoon00: -1 is negative"},
		{"budget of 0", forgeOn + `rollout = { group = "k3s-agent"; lease.anchor = "` + strings.Repeat("a", 40) + `"; };
			settings.rollout.budgets.k3s-agent = 0;`, "rollout.budgets.k3s-agent: 0 is not a budget"},
		{"unknown group", forgeOn + `rollout = { group = "k8s-agent"; budgets.k3s-agent = 2; lease.anchor = "` + strings.Repeat("a", 40) + `"; };`,
			`rollout.group: unknown group "k8s-agent"`},
		{"group without an anchor", forgeOn + `rollout = { group = "k3s-agent"; budgets.k3s-agent = 2; };`,
			`rollout.lease.anchor: "" is not a full commit id`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkConfig(t, nixEval(t, renderExpr("{ "+base+tc.options+" }")))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("check-config = %v; want an error containing %q", err, tc.want)
			}
		})
	}
}
