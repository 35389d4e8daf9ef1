package cli

import (
	"context"

	"github.com/avalanche-fleet/avalanche/pkg/secrets"
)

// runHostCommand returns the run function of an admin host command
// (add-host, remove-host, rotate-host-key). They edit SOPS files, so they
// live in avalanche-decrypt, which links sops; the resident agent does not.
func runHostCommand(name string) func(ctx context.Context, m *Main, args []string) error {
	return func(ctx context.Context, m *Main, args []string) error {
		return delegate(ctx, m, decryptProgram(m), append([]string{name}, args...))
	}
}

// decryptProgram is the avalanche-decrypt binary next to this one; the
// AVALANCHE_DECRYPT environment variable overrides it (tests).
func decryptProgram(m *Main) string {
	if p := m.Getenv("AVALANCHE_DECRYPT"); p != "" {
		return p
	}
	if p, err := secrets.DefaultHelper(); err == nil {
		return p
	}
	return secrets.HelperName
}

// hostCommandUsage is printed by `avalanche-agent help` for the three.
var hostCommandUsage = map[string]string{
	"add-host":        "enrol a host: inventory, host folder, .sops.yaml, its secrets (admin's checkout)",
	"remove-host":     "take a host out of the repository and of every SOPS file (admin's checkout)",
	"rotate-host-key": "give a host's SOPS files to its new SSH host key (admin's checkout)",
}
