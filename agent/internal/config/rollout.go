package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Rollout places this host in the fleet's rollout (docs/rollouts.md): a host
// of wave N deploys a main commit only once every host of the earlier waves
// reports it deployed, confirmed and healthy for Soak, in the forge commit
// statuses the agents already send (report.forge).
type Rollout struct {
	// Wave is this host's wave; wave 0 (the canaries) is never held.
	Wave int `json:"wave,omitempty"`
	// Waves is the whole wave table, host -> wave, rendered from the
	// inventory (nixos/lib/rollout.nix). Empty: no gate.
	Waves map[string]int `json:"waves,omitempty"`
	// Soak is how long the earlier waves must have run a commit
	// successfully before this host deploys it.
	Soak Duration `json:"soak,omitempty"`
	// Group is this host's disruption group (its first role); empty: no
	// disruption budget. At most Budgets[Group] hosts of the group
	// activate or reboot at once, under a lease kept in the forge's
	// commit statuses (package lease).
	Group string `json:"group,omitempty"`
	// Budgets is every group's budget, group -> hosts at once (at least 1),
	// rendered from the inventory; it must name Group.
	Budgets map[string]int `json:"budgets,omitempty"`
	// Lease says where the lease lives and how long a claim lives.
	Lease RolloutLease `json:"lease,omitzero"`
}

// RolloutLease is where the disruption budget's lease lives.
type RolloutLease struct {
	// Anchor is the full id of a commit of the repository that the
	// claims are set on; every host of the fleet must name the same.
	Anchor string `json:"anchor,omitempty"`
	// TTL is how long a claim lives without a renewal: a holder that dies
	// or is unplugged frees the lease this long after its last renewal.
	// It renews every TTL/3 while it activates.
	TTL Duration `json:"ttl,omitempty"`
}

// Budget returns this host's group's budget, 0 without a group.
func (r Rollout) Budget() int {
	if r.Group == "" {
		return 0
	}
	return r.Budgets[r.Group]
}

// Gated reports whether this host waits for earlier waves.
func (r Rollout) Gated() bool { return r.Wave > 0 && len(r.Waves) > 0 }

// Earlier returns the hosts of the waves before this host's, in name order.
func (r Rollout) Earlier() []string {
	var hosts []string
	for h, w := range r.Waves {
		if w < r.Wave {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	return hosts
}

// validate checks rollout; every message names its key.
func (c *Config) validateRollout() []error {
	r := c.Rollout
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if r.Wave < 0 {
		bad("rollout.wave: %d is negative (wave 0 deploys first)", r.Wave)
	}
	if r.Soak < 0 {
		bad("rollout.soak: %q is negative", r.Soak.D().String())
	}
	for _, h := range slices.Sorted(maps.Keys(r.Waves)) {
		if !hostnameRE.MatchString(h) {
			bad("rollout.waves: %q is not a host name", h)
		}
		if r.Waves[h] < 0 {
			bad("rollout.waves.%s: %d is negative (wave 0 deploys first)", h, r.Waves[h])
		}
	}
	if len(r.Waves) > 0 {
		if w, ok := r.Waves[c.Hostname]; !ok {
			bad("rollout.waves does not name this host (%s): render it from the same inventory", c.Hostname)
		} else if w != r.Wave {
			bad("rollout.wave is %d but rollout.waves.%s is %d", r.Wave, c.Hostname, w)
		}
	}
	if r.Gated() && !c.Report.Forge.Enabled() {
		bad("rollout.wave is %d: set report.forge.url (the gate reads the earlier waves' commit statuses there)", r.Wave)
	}
	return append(errs, c.validateBudget()...)
}

// validateBudget checks the disruption budget; every message names its key.
func (c *Config) validateBudget() []error {
	r := c.Rollout
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, g := range slices.Sorted(maps.Keys(r.Budgets)) {
		if !hostnameRE.MatchString(g) {
			bad("rollout.budgets: %q is not a group name (a role: letters, digits, -)", g)
		}
		if r.Budgets[g] < 1 {
			bad("rollout.budgets.%s: %d is not a budget (at least 1 host of the group at a time)", g, r.Budgets[g])
		}
	}
	if r.Group == "" {
		if r.Lease.Anchor != "" {
			bad("rollout.lease.anchor is set but rollout.group is not: name this host's group")
		}
		return errs
	}
	if _, ok := r.Budgets[r.Group]; !ok {
		bad("rollout.group: unknown group %q (rollout.budgets names %s)", r.Group, strings.Join(slices.Sorted(maps.Keys(r.Budgets)), ", "))
	}
	if !commitRE.MatchString(r.Lease.Anchor) {
		bad("rollout.lease.anchor: %q is not a full commit id (the claims of rollout.group %s are set on it)", r.Lease.Anchor, r.Group)
	}
	if r.Lease.TTL.D() < 10*time.Second {
		bad("rollout.lease.ttl: %s is too short (at least 10s; a holder renews every ttl/3)", r.Lease.TTL.D())
	}
	if !c.Report.Forge.Enabled() {
		bad("rollout.group is %s: set report.forge.url (the lease lives in the forge's commit statuses)", r.Group)
	}
	return errs
}

var commitRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
