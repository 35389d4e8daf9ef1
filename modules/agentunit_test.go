package modules

import (
	"slices"
	"strings"
	"testing"
)

// The agent's unit has MemoryHigh= and MemoryMax= by default, sized by what
// the host does (issue 25 item 5): a push that makes a fetch or an
// evaluation take gigabytes hits the agent's cgroup only, never k3s on a
// 2 GB Raspberry Pi. A Pi in builder mode that never evaluates gets a small
// bound; a host that may evaluate one fitting an evaluation; the builder
// role one per parallel evaluation.
func TestAgentUnitMemoryBounds(t *testing.T) {
	f := newFleet(t)
	f.writeSecrets(t, []string{"raccoon00", "eagle", "cardinal"}) // the hosts' assertions want their files
	type unit struct {
		MemoryHigh *string `json:"MemoryHigh"`
		MemoryMax  *string `json:"MemoryMax"`
	}
	tests := []struct {
		attr      string
		high, max string
	}{
		{`report "raccoon00"`, "384M", "512M"}, // builder mode, builderFallback = "wait"
		{`report "eagle"`, "2560M", "3G"},      // builder mode that evaluates when the builder is late
		{"moduleOnly", "2560M", "3G"},          // evaluates
		{`report "cardinal"`, "4G", "5G"},      // the builder role, parallelism 2
	}
	for _, tt := range tests {
		t.Run(tt.attr, func(t *testing.T) {
			var r struct {
				AgentUnit unit `json:"agentUnit"`
			}
			f.mustEval(t, tt.attr, &r)
			u := r.AgentUnit
			if u.MemoryHigh == nil || u.MemoryMax == nil || *u.MemoryHigh != tt.high || *u.MemoryMax != tt.max {
				t.Errorf("%s: avalanche-agent.service MemoryHigh=%v MemoryMax=%v; want %s and %s", tt.attr, deref(u.MemoryHigh), deref(u.MemoryMax), tt.high, tt.max)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "(unset)"
	}
	return *s
}

// A host whose secrets belong to users its own activation creates (issue 25
// item 10: kanidm, step-ca, vaultwarden on mysecrets) hands them over in
// the activation, after users and groups and before services start.
func TestActivationHandsSecretsToNewOwners(t *testing.T) {
	f := newFleet(t)
	f.writeSecrets(t, []string{"mysecrets"})
	var r struct {
		SecretsOwners *struct {
			Deps []string `json:"deps"`
			Text string   `json:"text"`
		} `json:"secretsOwners"`
	}
	f.mustEval(t, `report "mysecrets"`, &r)
	s := r.SecretsOwners
	if s == nil || !slices.Contains(s.Deps, "users") || !slices.Contains(s.Deps, "groups") ||
		!strings.Contains(s.Text, `/bin/avalanche-agent secrets handover --config /nix/store/`) || !strings.Contains(s.Text, `--system "$systemConfig"`) {
		t.Errorf("mysecrets' activation step avalanche-agent-secrets-owners = %+v; want `avalanche-agent secrets handover` after users and groups", s)
	}
}
