package daemon

import (
	"context"

	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Gate holds a main commit until the earlier waves of the fleet ran it
// (package rollout); *rollout.Gate is one.
type Gate interface {
	Check(ctx context.Context, commit string) (rollout.Decision, bool, error)
	Last() *rollout.Decision
}

// gate is the rollout gate, the first step of a deployment of main. It
// runs before evaluation and the builder's release lookup, and it is no
// journaled step: a held commit has no verdict, and holding it writes
// nothing to disk (the gate keeps the forge's answer in memory). A
// testing branch and a drift repair are never held. It returns the pass's
// result when the commit must wait, nil when it may deploy.
func (d *Daemon) gate(ctx context.Context, t target, reason string) *passResult {
	if d.Gate == nil || t.branch != d.Config.Repository.Branch || reason != "commit" {
		return nil
	}
	dec, changed, err := d.Gate.Check(ctx, t.commit)
	if changed || err != nil {
		d.logGate(dec, err)
	}
	if dec.Verdict == rollout.Open {
		return nil
	}
	d.setPhase(status.Waiting, "rollout gate "+string(dec.Verdict)+" for "+short(t.commit)+": "+dec.Reason)
	res := &passResult{result: "gated"}
	if next := dec.NextChange(); !next.IsZero() {
		res.retryIn = max(next.Sub(d.now()), 0) + 1e9 // a second after the soak ends
	}
	return res
}

// logGate writes one journal line per gate decision that changed.
func (d *Daemon) logGate(dec rollout.Decision, err error) {
	ev := d.Log.Info()
	if err != nil {
		ev = d.Log.Warn().Err(err)
	}
	ev = ev.Str("commit", dec.Commit).Str("phase", "gate").Str("gate", string(dec.Verdict)).
		Int("gateWave", dec.Wave).Bool("gateSkipped", dec.Skipped)
	if dec.By != "" {
		ev = ev.Str("gateBy", dec.By)
	}
	var held []string
	for _, h := range dec.Hosts {
		if h.State != rollout.HostHealthy {
			held = append(held, h.Name+"="+h.State)
		}
	}
	if len(held) > 0 {
		ev = ev.Strs("gateHosts", held)
	}
	ev.Msg("rollout gate " + string(dec.Verdict) + ": " + dec.Reason)
}

// gateView is the gate's last decision for status, nil without a gate.
func (d *Daemon) gateView() *rollout.Decision {
	if d.Gate == nil {
		return nil
	}
	return d.Gate.Last()
}
