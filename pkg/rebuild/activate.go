package rebuild

import (
	"context"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultProfile is the NixOS system profile.
const DefaultProfile = "/nix/var/nix/profiles/system"

// Activation says how to switch to a built system.
type Activation struct {
	// Action is switch, boot or test (as for nixos-rebuild).
	Action string
	// Profile is the system profile set for switch and boot; default DefaultProfile.
	Profile string
	// InstallBootloader sets NIXOS_INSTALL_BOOTLOADER=1 (nixos-rebuild --install-bootloader).
	InstallBootloader bool
	// SystemdRun runs switch-to-configuration in a transient systemd unit,
	// like nixos-rebuild does, so that restarting the caller's own service
	// during the switch does not kill the switch. Its output then goes to
	// the journal of that unit, not to the caller.
	SystemdRun bool
	// SystemdRunPath is the systemd-run program; default "systemd-run" from $PATH.
	SystemdRunPath string
	// Unit is the transient unit name; default avalanche-switch-<store hash prefix>.
	Unit string
	// Timeout bounds switch-to-configuration (RuntimeMaxSec= of the unit
	// under systemd-run); zero means no limit.
	Timeout time.Duration
	// ProfileSet says the caller already pointed the profile at the system
	// (SetProfile, as its own step): only switch-to-configuration runs.
	ProfileSet bool
	// StopPost, under SystemdRun, is a command systemd runs when the switch
	// unit ends, however it ends (ExecStopPost=, with $SERVICE_RESULT,
	// $EXIT_CODE and $EXIT_STATUS set): how a caller records the switch's
	// result where it survives the caller, since the unit is collected.
	StopPost []string
	// LogFields, under SystemdRun, are extra journal fields ("NAME=value")
	// on everything the switch unit logs (LogExtraFields=), so that what
	// switch-to-configuration printed is found with the caller's entries.
	LogFields []string
}

// Activate does what nixos-rebuild does after building: for switch and
// boot it points the profile at out (`nix-env -p <profile> --set <out>`),
// then it runs `<out>/bin/switch-to-configuration <action>`.
//
// Cancelling ctx kills the commands; under SystemdRun the unit keeps
// running and only the wait for it ends.
func (n *Nix) Activate(ctx context.Context, out string, a Activation) error {
	if err := a.check(); err != nil {
		return fmt.Errorf("activating %s: %w: %w", out, ErrActivate, err)
	}
	if (a.Action == "switch" || a.Action == "boot") && !a.ProfileSet {
		if err := n.SetProfile(ctx, a.profile(), out); err != nil {
			return fmt.Errorf("activating %s: %w", out, err)
		}
	}
	if a.Timeout > 0 && !a.SystemdRun {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
	}
	c := a.switchCommand(out)
	if n.Stderr != nil {
		c.stderr = forgiving{n.Stderr}
	}
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("activating %s: %w", out, classifyActivation(err))
	}
	return nil
}

// Rollback returns to a previous system: it is Activate with that system's
// store path, so for switch and boot the profile gains a new generation
// pointing at previous.
func (n *Nix) Rollback(ctx context.Context, previous string, a Activation) error {
	return n.Activate(ctx, previous, a)
}

// SetProfile points profile at out as `nix-env -p <profile> --set <out>`
// does, adding a generation unless out already is the current one.
func (n *Nix) SetProfile(ctx context.Context, profile, out string) error {
	if err := os.MkdirAll(filepath.Dir(profile), 0o755); err != nil {
		return fmt.Errorf("setting profile %s: %w: %w", profile, ErrActivate, err)
	}
	c := n.nixCommand("nix-env", "-p", profile, "--set", out)
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("setting profile %s: %w", profile, classifyActivation(err))
	}
	return nil
}

// SwitchGeneration points profile back at an existing generation (`nix-env
// -p <profile> --switch-generation <gen>`), the undo of a SetProfile whose
// switch never ran: no new generation is made.
func (n *Nix) SwitchGeneration(ctx context.Context, profile string, gen int) error {
	c := n.nixCommand("nix-env", "-p", profile, "--switch-generation", strconv.Itoa(gen))
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("switching profile %s to generation %d: %w", profile, gen, classifyActivation(err))
	}
	return nil
}

// classifyActivation wraps err with ErrActivate, even when ctx ended the
// command (the context error stays in the chain): an interrupted switch may
// have left the system half-switched, which the caller must handle like a
// failed one.
func classifyActivation(err error) error {
	return fmt.Errorf("%w: %w", ErrActivate, err)
}

func (a Activation) check() error {
	switch a.Action {
	case "switch", "boot", "test":
		return nil
	default:
		return fmt.Errorf("unknown action %q (want switch, boot or test)", a.Action)
	}
}

func (a Activation) profile() string {
	if a.Profile == "" {
		return DefaultProfile
	}
	return a.Profile
}

// switchCommand returns how nixos-rebuild would run switch-to-configuration.
// Unlike nixos-rebuild it does not pass --pipe to systemd-run: the unit's
// output goes to the journal, so when the switch restarts the caller's own
// service, the switch does not die of a broken pipe. Without --quiet,
// systemd-run reports the unit's result on stderr, which lands in the tail.
func (a Activation) switchCommand(out string) command {
	script := path.Join(out, "bin", "switch-to-configuration")
	env := switchEnv(a.InstallBootloader)
	if !a.SystemdRun {
		// nixos-rebuild without systemd-run: env -i with only these.
		return command{argv: []string{script, a.Action}, env: env}
	}
	argv := []string{a.systemdRun(), "--unit=" + a.unit(out), "--wait", "--collect",
		"--no-ask-password", "--service-type=exec"}
	if a.Timeout > 0 {
		secs := max(int64(math.Ceil(a.Timeout.Seconds())), 1) // 0 would mean no limit
		argv = append(argv, "--property=RuntimeMaxSec="+strconv.FormatInt(secs, 10))
	}
	for _, f := range a.LogFields {
		argv = append(argv, "--property=LogExtraFields="+f)
	}
	if len(a.StopPost) > 0 {
		argv = append(argv, "--property=ExecStopPost="+unitArgv(a.StopPost))
	}
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PATH=") { // the unit gets the manager's PATH
			argv = append(argv, "--setenv="+kv)
		}
	}
	return command{argv: append(argv, script, a.Action)}
}

// unitArgv quotes argv for a unit file's command line.
func unitArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return strings.Join(q, " ")
}

// switchEnv is the environment nixos-rebuild gives switch-to-configuration.
// PATH is kept for the direct case so the script finds its interpreter helpers.
func switchEnv(installBootloader bool) []string {
	v := ""
	if installBootloader {
		v = "1"
	}
	env := []string{"NIXOS_INSTALL_BOOTLOADER=" + v}
	for _, name := range []string{"LOCALE_ARCHIVE", "NIXOS_NO_CHECK", "PATH"} {
		if val, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+val)
		}
	}
	return env
}

func (a Activation) systemdRun() string {
	if a.SystemdRunPath == "" {
		return "systemd-run"
	}
	return a.SystemdRunPath
}

// unit returns the transient unit name, by default from the store hash of out.
func (a Activation) unit(out string) string {
	if a.Unit != "" {
		return a.Unit
	}
	hash := path.Base(out)
	if len(hash) > 12 {
		hash = hash[:12]
	}
	return "avalanche-switch-" + hash
}

// ProfileGeneration reads a profile link (…/system -> system-42-link ->
// /nix/store/…) and returns its generation number and store path.
func ProfileGeneration(profile string) (gen int, target string, err error) {
	link, err := os.Readlink(profile)
	if err != nil {
		return 0, "", fmt.Errorf("reading profile: %w", err)
	}
	name := strings.TrimSuffix(filepath.Base(link), "-link")
	num, ok := strings.CutPrefix(name, filepath.Base(profile)+"-")
	gen, convErr := strconv.Atoi(num)
	if !ok || convErr != nil || !strings.HasSuffix(link, "-link") {
		return 0, "", fmt.Errorf("reading profile %s: %q is not a generation link", profile, link)
	}
	if !filepath.IsAbs(link) {
		link = filepath.Join(filepath.Dir(profile), link)
	}
	target, err = os.Readlink(link)
	if err != nil {
		return 0, "", fmt.Errorf("reading profile generation: %w", err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(link), target)
	}
	return gen, target, nil
}
