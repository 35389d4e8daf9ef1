package config

import (
	"strings"
	"testing"
	"time"
)

const anchor = "0123456789abcdef0123456789abcdef01234567"

// The disruption budget's keys: a good group takes the default time to
// live; each bad input is refused with an error that names its key.
func TestBudgetConfig(t *testing.T) {
	base := `"version":1,"hostname":"opi02","repository":{"url":"https://git.internal/fleet/avalanche.git","tokenFile":"/t"},` +
		`"report":{"forge":{"url":"https://git.internal","tokenFile":"/f"}},`
	good := `"rollout":{"group":"k3s-server","budgets":{"k3s-server":1,"k3s-agent":2},"lease":{"anchor":"` + anchor + `"}}`
	c, err := Parse([]byte("{" + base + good + "}"))
	if err != nil {
		t.Fatalf("Parse(a good budget) = %v", err)
	}
	if c.Rollout.Budget() != 1 || c.Rollout.Lease.TTL.D() != 15*time.Minute {
		t.Errorf("budget %d, ttl %v; want 1, 15m (the default)", c.Rollout.Budget(), c.Rollout.Lease.TTL.D())
	}
	for _, tc := range []struct{ name, rollout, want string }{
		{"budget of 0", `{"group":"k3s-server","budgets":{"k3s-server":0},"lease":{"anchor":"` + anchor + `"}}`,
			"rollout.budgets.k3s-server: 0 is not a budget"},
		{"unknown group", `{"group":"k8s-server","budgets":{"k3s-server":1},"lease":{"anchor":"` + anchor + `"}}`,
			`rollout.group: unknown group "k8s-server" (rollout.budgets names k3s-server)`},
		{"no anchor", `{"group":"k3s-server","budgets":{"k3s-server":1}}`, `rollout.lease.anchor: "" is not a full commit id`},
		{"short ttl", `{"group":"k3s-server","budgets":{"k3s-server":1},"lease":{"anchor":"` + anchor + `","ttl":"2s"}}`,
			"rollout.lease.ttl: 2s is too short"},
		{"bad group name", `{"group":"k3s/server","budgets":{"k3s/server":1},"lease":{"anchor":"` + anchor + `"}}`,
			`rollout.budgets: "k3s/server" is not a group name`},
		{"anchor without group", `{"lease":{"anchor":"` + anchor + `"}}`, "rollout.lease.anchor is set but rollout.group is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("{" + base + `"rollout":` + tc.rollout + "}"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(rollout %s) = %v; want an error containing %q", tc.rollout, err, tc.want)
			}
		})
	}
	noForge := `"version":1,"hostname":"opi02","repository":{"url":"https://git.internal/fleet/avalanche.git","tokenFile":"/t"},`
	if _, err := Parse([]byte("{" + noForge + good + "}")); err == nil || !strings.Contains(err.Error(), "rollout.group is k3s-server: set report.forge.url") {
		t.Errorf("Parse(a group without report.forge) = %v; want an error naming rollout.group and report.forge.url", err)
	}
}
