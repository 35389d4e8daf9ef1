package config

import (
	"fmt"
	"maps"
	"slices"
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
	return errs
}
