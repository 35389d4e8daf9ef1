package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Draining a k3s node (deploy.drain): before a switch that restarts k3s,
// and before a reboot, the node is cordoned and its pods evicted through
// the eviction API (PodDisruptionBudgets respected); once the switch or
// the reboot is over and the node is Ready, it is uncordoned. The work is
// done by avalanche-drain (agent/drain), a helper that links client-go and
// kubectl's drain package, run only then: the resident agent stays small.
//
// A drain outlives a flight (the reboot comes after the deployment has
// ended and its journal is emptied), so it has its own write-ahead record,
// drain.json in the state directory: written and fsynced before the
// cordon, removed after the uncordon. Whatever ends the agent in between
// (a crash, a power cut, the reboot it asked for), the next start finds
// the record and uncordons the node once it is Ready.

// drainHelperName is the helper's file name, looked up next to the agent.
const drainHelperName = "avalanche-drain"

// k3sUnit is the unit whose restart calls for a drain.
const k3sUnit = "k3s.service"

// Reasons for a drain.
const (
	drainForSwitch = "switch" // the switch restarts (or stops) k3s
	drainForReboot = "reboot" // the host reboots
)

// drainRecord is a node this agent cordoned and has not uncordoned yet.
type drainRecord struct {
	Node   string    `json:"node"`
	Reason string    `json:"reason"`
	Commit string    `json:"commit,omitempty"`
	Boot   string    `json:"boot"` // the boot it was drained in
	Time   time.Time `json:"time"`
}

func (d *Daemon) drainPath() string { return filepath.Join(d.Config.StateDir, "drain.json") }

// loadDrain reads the record a previous process left. A record that does
// not decode is kept as cordoned-by-us: uncordoning a node nobody meant
// to leave cordoned is the safe error.
func (d *Daemon) loadDrain() {
	b, err := os.ReadFile(d.drainPath())
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	r := &drainRecord{Node: d.Config.Deploy.Drain.Node, Reason: drainForSwitch}
	if err == nil {
		err = json.Unmarshal(b, r)
	}
	if err != nil {
		d.Log.Error().Err(err).Str("file", d.drainPath()).Msg("reading the drain record; uncordoning the configured node")
	}
	d.drained = r
	d.Log.Warn().Str("phase", "drain").Str("node", r.Node).Str("reason", r.Reason).Time("since", r.Time).
		Msg("the node was left cordoned by an earlier run; it is uncordoned once Ready")
}

// saveDrain makes r the durable record (nil: none).
func (d *Daemon) saveDrain(r *drainRecord) error {
	if r == nil {
		if err := os.Remove(d.drainPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the drain record: %w", err)
		}
		d.drained = nil
		return syncDir(d.Config.StateDir)
	}
	b, _ := json.Marshal(r)
	if err := state.WriteFileAtomic(d.drainPath(), b, 0o600); err != nil {
		return fmt.Errorf("writing the drain record: %w", err)
	}
	d.drained = r
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// drainStep is the flight's drain step, after the secrets step (a changed
// secret can restart k3s too) and before the profile: it drains the node
// when the switch will restart k3s. A drain that fails (a budget that never allows an
// eviction, an API server that does not answer) is cluster trouble, no
// verdict: the node is uncordoned and the switch does not happen.
func (d *Daemon) drainStep(ctx context.Context, f *journal.Flight) error {
	dc := d.Config.Deploy.Drain
	if !dc.Enable || d.drained != nil || f.Action == "boot" {
		return nil // boot: k3s changes at the reboot, which drains
	}
	why := k3sRestarts(resolve(d.Config.Deploy.CurrentSystem), f.StorePath)
	if why == "" && slices.Contains(f.RestartUnits, k3sUnit) {
		why = "a secret it reads changed: it is restarted"
	}
	if why == "" {
		return nil
	}
	d.Log.Info().Str("commit", f.Commit).Str("phase", journal.StepDrain).Str("node", dc.Node).Str("why", why).
		Msg("draining the node: the switch restarts k3s")
	return d.drainNode(ctx, drainForSwitch, f.Commit)
}

// k3sRestarts says why switching from cur to next restarts or stops k3s,
// "" when it does not. switch-to-configuration restarts a unit whose unit
// file (or drop-in) differs between the two systems, unless the new unit
// says X-RestartIfChanged=false, and stops one the new system lacks; a
// system without k3s now has no node to drain.
func k3sRestarts(cur, next string) string {
	unit := func(sys string) (string, bool) {
		dir := filepath.Join(sys, "etc/systemd/system")
		b, err := os.ReadFile(filepath.Join(dir, k3sUnit))
		if err != nil {
			return "", false
		}
		drop, _ := filepath.Glob(filepath.Join(dir, k3sUnit+".d", "*.conf"))
		for _, p := range drop {
			db, _ := os.ReadFile(p)
			b = append(append(b, "\n# "+filepath.Base(p)+"\n"...), db...)
		}
		return string(b), true
	}
	old, running := unit(cur)
	if !running {
		return ""
	}
	nu, kept := unit(next)
	switch {
	case !kept:
		return "the new system has no " + k3sUnit + ": it is stopped"
	case nu == old:
		return ""
	case strings.Contains(nu, "X-RestartIfChanged=false"):
		return ""
	}
	return k3sUnit + " changed: it is restarted"
}

// drainNode records the drain, then cordons and drains. On failure it
// uncordons again, so no half state stays behind.
func (d *Daemon) drainNode(ctx context.Context, reason, commit string) error {
	dc := d.Config.Deploy.Drain
	d.setPhase(status.Activating, "draining node "+dc.Node+" ("+reason+")")
	rec := &drainRecord{Node: dc.Node, Reason: reason, Commit: commit, Boot: d.Clock.Now().Boot, Time: d.now()}
	if err := d.saveDrain(rec); err != nil {
		return fault.New(fault.Host, err)
	}
	start := d.now()
	err := d.runDrainHelper(ctx, dc.Timeout.D(), "drain")
	if err == nil {
		d.Log.Info().Str("commit", commit).Str("phase", journal.StepDrain).Str("node", dc.Node).Str("reason", reason).
			Dur("durationMs", d.now().Sub(start)).Msg("node drained")
		return nil
	}
	if uerr := d.runDrainHelper(context.WithoutCancel(ctx), time.Minute, "uncordon"); uerr != nil {
		err = fmt.Errorf("%w; uncordoning it again: %w (retried on the next pass)", err, uerr)
	} else if serr := d.saveDrain(nil); serr != nil {
		err = fmt.Errorf("%w; %w", err, serr)
	}
	if ctx.Err() != nil {
		return fault.New(fault.Shutdown, err)
	}
	return fault.New(fault.Host, fmt.Errorf("draining node %s (left uncordoned, nothing switched): %w", dc.Node, err))
}

// undrain uncordons the node this agent drained, once it is Ready; not
// while the reboot it was drained for has not happened yet. When the node
// does not come back in time, it stays cordoned and the next pass tries
// again.
func (d *Daemon) undrain(ctx context.Context) {
	r := d.drained
	if r == nil || (r.Reason == drainForReboot && r.Boot != "" && r.Boot == d.Clock.Now().Boot) {
		return
	}
	dc := d.Config.Deploy.Drain
	log := d.Log.With().Str("phase", "uncordon").Str("node", r.Node).Str("reason", r.Reason).Logger()
	wait := []string{"wait-ready"}
	if r.Reason == drainForReboot {
		// After a reboot the node's status from before it must not count.
		wait = []string{"-since=" + r.Time.UTC().Format(time.RFC3339Nano), "wait-ready"}
	}
	start := d.now()
	err := d.runDrainHelper(ctx, dc.Timeout.D(), wait...)
	if err == nil {
		err = d.runDrainHelper(ctx, time.Minute, "uncordon")
	}
	if err == nil {
		err = d.saveDrain(nil)
	}
	if err != nil {
		log.Warn().Err(err).Msg("the node stays cordoned; uncordoning it again on the next pass")
		return
	}
	log.Info().Dur("durationMs", d.now().Sub(start)).Msg("node Ready and uncordoned")
}

// drainBeforeReboot drains the node before a reboot (deploy.drain.enable);
// false when the reboot must not happen now.
func (d *Daemon) drainBeforeReboot(ctx context.Context) bool {
	if !d.Config.Deploy.Drain.Enable {
		return true
	}
	if r := d.drained; r != nil { // drained for the switch: keep it so across the reboot
		cp := *r
		cp.Reason, cp.Boot, cp.Time = drainForReboot, d.Clock.Now().Boot, d.now()
		if err := d.saveDrain(&cp); err != nil {
			d.Log.Error().Err(err).Msg("not rebooting")
			return false
		}
		return true
	}
	if err := d.drainNode(ctx, drainForReboot, ""); err != nil {
		d.Log.Warn().Err(err).Str("phase", journal.StepDrain).Msg("not rebooting: the node could not be drained; trying after the next deployment")
		return false
	}
	return true
}

// rebootFailed undoes a drain for a reboot that did not start.
func (d *Daemon) rebootFailed(ctx context.Context) {
	if r := d.drained; r != nil && r.Reason == drainForReboot {
		r.Boot = "" // no reboot coming: uncordon now
		d.undrain(ctx)
	}
}

// runDrainHelper runs avalanche-drain with args, bounded by timeout and a
// minute for its own clean-up. Its error carries the argv and the tail of
// its standard error.
func (d *Daemon) runDrainHelper(ctx context.Context, timeout time.Duration, args ...string) error {
	dc := d.Config.Deploy.Drain
	helper := dc.Helper
	if helper == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locating %s: %w", drainHelperName, err)
		}
		helper = filepath.Join(filepath.Dir(exe), drainHelperName)
	}
	argv := append([]string{"-kubeconfig=" + dc.Kubeconfig, "-node=" + dc.Node, "-timeout=" + timeout.String()}, args...)
	release := d.Notify.Hold(timeout + time.Minute)
	defer release()
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helper, argv...)
	cmd.Env = []string{} // the kubeconfig names all it needs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", helper, strings.Join(argv, " "), err, tail(stderr.Bytes()))
	}
	return nil
}
