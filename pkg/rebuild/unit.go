package rebuild

import (
	"bytes"
	"context"
	"strings"
)

// UnitRunning reports whether the transient unit that runs a switch (see
// Activation.SystemdRun) is still active, activating, reloading or
// deactivating. A unit that ended is collected (--collect) and reads as
// inactive; so does a host without systemd.
func UnitRunning(ctx context.Context, unit string) bool {
	var out bytes.Buffer
	c := command{argv: []string{"systemctl", "is-active", unit}, stdout: &out}
	_ = c.run(ctx) // is-active exits non-zero for every state but active
	switch strings.TrimSpace(out.String()) {
	case "active", "activating", "deactivating", "reloading":
		return true
	}
	return false
}

// StopUnit stops a transient switch unit (its switch-to-configuration is
// killed the way systemd kills a unit's processes).
func StopUnit(ctx context.Context, unit string) error {
	c := command{argv: []string{"systemctl", "stop", unit}}
	if err := c.run(ctx); err != nil {
		return classifyActivation(err)
	}
	return nil
}
