package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// The switch unit is collected as soon as it ends (--collect), so systemd
// forgets its result; a switch that ends while the agent is down would be
// judged only by what runs. The unit therefore records its own result: its
// ExecStopPost= runs `avalanche-agent switch-result <file>`, which writes
// systemd's $SERVICE_RESULT, fsynced, under the state directory, where it
// survives the agent and a reboot.

// resultFile is where unit's result is recorded.
func (d *Daemon) resultFile(unit string) string {
	return filepath.Join(d.Config.StateDir, "switch", unit+".json")
}

// WriteSwitchResult records r at path durably (temporary file, fsync,
// rename, directory fsync).
func WriteSwitchResult(path string, r rebuild.UnitResult) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("recording the switch result: %w", err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(path, append(data, '\n'), 0o600)
}

// switchResult reads unit's recorded result; ok is false when none was
// recorded (the unit did not end, or ended with the machine).
func (d *Daemon) switchResult(unit string) (r rebuild.UnitResult, ok bool) {
	data, err := os.ReadFile(d.resultFile(unit))
	if err != nil {
		return r, false
	}
	if err := json.Unmarshal(data, &r); err != nil {
		d.Log.Warn().Err(err).Str("unit", unit).Msg("reading a switch unit's recorded result")
		return r, false
	}
	return r, true
}

// stopPost is the ExecStopPost= command that records unit's result, nil
// when this program's path is unknown.
func (d *Daemon) stopPost(unit string) []string {
	if d.SelfPath == "" || unit == "" {
		return nil
	}
	return []string{d.SelfPath, "switch-result", d.resultFile(unit)}
}

// dropSwitchResults removes what f's switch units recorded, once f ended.
func (d *Daemon) dropSwitchResults(f *journal.Flight) {
	for _, unit := range []string{f.Unit, f.RollbackUnit} {
		if unit != "" {
			os.Remove(d.resultFile(unit))
		}
	}
}

// failedUnits lists the units systemd reports failed; nil outside systemd
// (deploy.systemdRun off) or when systemctl cannot tell.
func (d *Daemon) failedUnits(ctx context.Context) []string {
	if !d.Config.Deploy.SystemdRunEnabled() {
		return nil
	}
	out, err := exec.CommandContext(ctx, "systemctl", "list-units", "--failed", "--plain", "--no-legend", "--full").Output()
	if err != nil {
		d.Log.Debug().Err(err).Msg("listing failed units")
		return nil
	}
	var units []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			units = append(units, f[0])
		}
	}
	return units
}

// newlyFailed are the units in now that were not in before; the agent's
// own switch units are judged by their results.
func newlyFailed(now, before []string) []string {
	var out []string
	for _, u := range now {
		if !slices.Contains(before, u) && !strings.HasPrefix(u, "avalanche-switch-") && !strings.HasPrefix(u, "avalanche-rollback-") {
			out = append(out, u)
		}
	}
	return out
}
