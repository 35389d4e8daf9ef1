package daemon

import (
	"context"

	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
)

// secretsHandover is a Secrets that installs a secret whose owner does not
// exist yet as root's, and hands it over once the switch created the owner
// (a fresh host's first deployment). The NixOS module already does it
// inside the activation, after users and groups and before services start;
// this is the agent's own pass after the switch, which also judges an
// owner the system never creates.
type secretsHandover interface {
	Handover(ctx context.Context, system, generation string) ([]string, error)
}

// handOver gives f's secrets still left to root to the owners the switch
// created. Their units are in f.RestartUnits already (a secret whose owner
// changed differs from the previous generation), restarted by confirm.
func (d *Daemon) handOver(ctx context.Context, f *journal.Flight) error {
	h, ok := d.Secrets.(secretsHandover)
	if !ok || f.Secrets == "" {
		return nil
	}
	handed, err := h.Handover(ctx, f.StorePath, f.Secrets)
	if len(handed) > 0 {
		d.Log.Info().Str("commit", f.Commit).Str("phase", journal.StepSecrets).Strs("secrets", handed).
			Msg("handed secrets over to owners the activation created")
	}
	return err
}
