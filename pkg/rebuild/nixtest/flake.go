package nixtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// BuildFailMessage is the last stderr line of a build with FlakeOptions.BuildFail.
const BuildFailMessage = "avalanche-test: build failure requested"

// ActivationFailMessage starts the stderr line of a failing switch-to-configuration.
const ActivationFailMessage = "avalanche-test: activation failed"

// FlakeOptions shapes the fake system that WriteFlake writes. Every field
// that ends up in the derivation changes its output path.
type FlakeOptions struct {
	// Name is the nixosConfigurations attribute; default "test".
	Name string
	// System is the Nix system; default the one Go runs on (x86_64-linux, aarch64-linux).
	System string
	// Marker is any text; changing it changes the output path.
	Marker string
	// ActivationLog is a file switch-to-configuration appends "<action> <out>" to.
	ActivationLog string
	// CurrentSystemLink is the symlink switch-to-configuration points at
	// the system for switch and test (like /run/current-system).
	CurrentSystemLink string
	// SwitchLog is a file switch-to-configuration appends "begin <action>
	// <out>" to when it starts and "end <action> <out> <status>" when it
	// ends, so a test can tell whether two switches ever overlapped.
	SwitchLog string
	// SwitchSleep makes switch-to-configuration sleep this long after its
	// begin line, before it changes anything, while the file SwitchSlowMarker
	// exists (or always when that is empty).
	SwitchSleep      time.Duration
	SwitchSlowMarker string
	// SwitchCommand is a shell command switch-to-configuration runs after it
	// changed the system, as NixOS's starts units (e.g. one that fails).
	SwitchCommand string
	// ActivationExit is switch-to-configuration's exit status.
	ActivationExit int
	// FailMarker is a file whose existence makes switch-to-configuration exit 1.
	FailMarker string
	// Kernel, Initrd and KernelModules are the contents of the store files
	// that $out/kernel, $out/initrd and $out/kernel-modules link to.
	Kernel, Initrd, KernelModules string
	// SecretsManifest is written verbatim to $out/etc/avalanche-agent/secrets.json.
	// It sits in a Nix indented string, so ${./secrets/x.yaml} puts that file
	// of the flake into the store and writes its store path.
	SecretsManifest string
	// EvalError makes the toplevel `throw` this message.
	EvalError string
	// BuildFail makes the builder print a few lines to stderr, the last
	// BuildFailMessage, and exit 1.
	BuildFail bool
	// BuildSleep makes the builder sleep this long first (milliseconds count,
	// so a test can recognise its own sleep process).
	BuildSleep time.Duration
	// Agent, when set, is written to $out/sw/bin/avalanche-agent: a system
	// that ships a (different) agent binary.
	Agent string
	// Files are extra files of the flake, by slash-separated path relative to it.
	Files map[string]string
	// EvalWork makes evaluating the toplevel build and keep an attribute set
	// of this many entries (about 250 bytes each), so evaluation costs
	// memory the way a NixOS evaluation does; the output path does not
	// depend on it beyond its value.
	EvalWork int
	// Activate is a shell script switch-to-configuration runs as a NixOS
	// system runs its activation script: after the begin line, before the
	// current-system link moves, with $1 the action and $systemConfig the
	// system. A non-zero exit fails the switch with status 4, as a unit
	// that fails to start does.
	Activate string
	// K3sUnit, when set, is written to $out/etc/systemd/system/k3s.service:
	// a k3s node's unit, whose change restarts k3s (the agent drains).
	K3sUnit string
	// Deps gives the system this many dependencies, derivations of 64 KiB
	// each (their content depends on Marker), listed in $out/deps: a
	// closure with many paths, like a NixOS system's.
	Deps int
}

// WriteFlake writes flake.nix (and opts.Files) into dir. The flake has no
// inputs and its toplevel depends only on literals and on the files named
// in SecretsManifest, never on the whole flake source, so a commit that
// only changes other files (kubernetes/…) leaves the output path unchanged.
func WriteFlake(dir string, opts FlakeOptions) error {
	if err := writeFiles(dir, opts.Files); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flakeNix(opts)), 0o644)
}

// writeFiles writes files (slash-separated path -> content) under dir.
func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// builderScript builds the fake system; it runs as a Nix build user with
// nothing but the host's /bin.
const builderScript = `set -e
echo "avalanche-test: building $out" >&2
if [ -n "$buildSleep" ]; then /bin/sleep "$buildSleep"; fi
if [ -n "$buildFail" ]; then
  echo "avalanche-test: compiling the impossible" >&2
  echo "` + BuildFailMessage + `" >&2
  exit 1
fi
/bin/mkdir -p "$out/bin" "$out/etc/avalanche-agent"
/bin/ln -s "$kernel" "$out/kernel"
/bin/ln -s "$initrd" "$out/initrd"
/bin/ln -s "$modules" "$out/kernel-modules"
printf '%s' "$marker" > "$out/marker"
if [ -n "$deps" ]; then printf '%s\n' $deps > "$out/deps"; fi
if [ -n "$agent" ]; then
  /bin/mkdir -p "$out/sw/bin"
  printf '#!/bin/sh\n# %s\n' "$agent" > "$out/sw/bin/avalanche-agent"
fi
if [ -n "$secretsManifest" ]; then
  printf '%s' "$secretsManifest" > "$out/etc/avalanche-agent/secrets.json"
fi
if [ -n "$k3sUnit" ]; then
  /bin/mkdir -p "$out/etc/systemd/system"
  printf '%s' "$k3sUnit" > "$out/etc/systemd/system/k3s.service"
fi
if [ -n "$activate" ]; then printf '%s' "$activate" > "$out/bin/activate"; fi
/bin/cat > "$out/bin/switch-to-configuration" <<SCRIPT
#!/bin/sh
action="\$1"
if [ -n "$switchLog" ]; then echo "begin \$action $out" >> "$switchLog"; fi
if [ -n "$switchSleep" ] && { [ -z "$switchSlowMarker" ] || [ -e "$switchSlowMarker" ]; }; then /bin/sleep "$switchSleep"; fi
if [ -n "$activationLog" ]; then echo "\$action $out" >> "$activationLog"; fi
if [ -e "$out/bin/activate" ] && ! systemConfig="$out" /bin/sh "$out/bin/activate" "\$action"; then
  echo "` + ActivationFailMessage + `: the activation script failed" >&2
  if [ -n "$switchLog" ]; then echo "end \$action $out 4" >> "$switchLog"; fi
  exit 4
fi
if [ -n "$failMarker" ] && [ -e "$failMarker" ]; then
  echo "` + ActivationFailMessage + `: $failMarker exists" >&2
  exit 1
fi
case "\$action" in
  switch|test) if [ -n "$currentSystem" ]; then /bin/ln -sfn "$out" "$currentSystem"; fi ;;
esac
$switchCommand
if [ "$activationExit" -ne 0 ]; then
  echo "` + ActivationFailMessage + `: exit $activationExit" >&2
fi
if [ -n "$switchLog" ]; then echo "end \$action $out $activationExit" >> "$switchLog"; fi
exit $activationExit
SCRIPT
/bin/chmod 0555 "$out/bin/switch-to-configuration"
`

// flakeNix renders flake.nix for opts.
func flakeNix(opts FlakeOptions) string {
	return fleetNix([]FlakeOptions{opts})
}

// fleetNix renders a flake with one nixosConfigurations entry per host.
func fleetNix(hosts []FlakeOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  description = \"avalanche test flake\";\n  outputs = { self }: let\n")
	for i, opts := range hosts {
		writeHost(&b, strconv.Itoa(i), withDefaults(opts))
	}
	fmt.Fprintf(&b, "  in {\n")
	for i, opts := range hosts {
		opts = withDefaults(opts)
		toplevel := "toplevel" + strconv.Itoa(i)
		if opts.EvalError != "" {
			toplevel = "throw " + nixString(opts.EvalError)
		}
		fmt.Fprintf(&b, "    nixosConfigurations.%s.config.system.build.toplevel = %s;\n", nixString(opts.Name), toplevel)
	}
	fmt.Fprintf(&b, "  };\n}\n")
	return b.String()
}

// writeHost writes the let bindings of one host's system, their names
// ending in suffix.
func writeHost(b *strings.Builder, suffix string, opts FlakeOptions) {
	fmt.Fprintf(b, "    kernel%s = builtins.toFile \"kernel\" %s;\n", suffix, nixString(opts.Kernel))
	fmt.Fprintf(b, "    initrd%s = builtins.toFile \"initrd\" %s;\n", suffix, nixString(opts.Initrd))
	fmt.Fprintf(b, "    modules%s = builtins.toFile \"kernel-modules\" %s;\n", suffix, nixString(opts.KernelModules))
	fmt.Fprintf(b, "    toplevel%s = derivation {\n", suffix)
	fmt.Fprintf(b, "      name = %s;\n", nixString("nixos-system-"+opts.Name))
	fmt.Fprintf(b, "      system = %s;\n", nixString(opts.System))
	fmt.Fprintf(b, "      builder = \"/bin/sh\";\n")
	fmt.Fprintf(b, "      args = [ \"-c\" %s ];\n", nixString(builderScript))
	fmt.Fprintf(b, "      kernel = kernel%s; initrd = initrd%s; modules = modules%s;\n", suffix, suffix, suffix)
	for _, kv := range derivationAttrs(opts) {
		fmt.Fprintf(b, "      %s = %s;\n", kv[0], nixString(kv[1]))
	}
	if opts.EvalWork > 0 {
		fmt.Fprintf(b, "      evalWork = %s;\n", evalWork(opts.EvalWork))
	}
	if opts.Deps > 0 {
		fmt.Fprintf(b, "      deps = %s;\n", deps(opts.Deps, opts.Marker, opts.System))
	}
	if opts.Activate != "" {
		fmt.Fprintf(b, "      activate = %s;\n", nixString(opts.Activate))
	}
	fmt.Fprintf(b, "      secretsManifest = %s;\n", nixIndented(opts.SecretsManifest))
	fmt.Fprintf(b, "    };\n")
}

// derivationAttrs are the plain string attributes the builder reads.
func derivationAttrs(opts FlakeOptions) [][2]string {
	sleep, fail, switchSleep := "", "", ""
	if opts.BuildSleep > 0 {
		sleep = strconv.FormatFloat(opts.BuildSleep.Seconds(), 'f', 3, 64)
	}
	if opts.SwitchSleep > 0 {
		switchSleep = strconv.FormatFloat(opts.SwitchSleep.Seconds(), 'f', 3, 64)
	}
	if opts.BuildFail {
		fail = "1"
	}
	var extra [][2]string
	if opts.SwitchCommand != "" { // only then: other systems keep their store paths
		extra = append(extra, [2]string{"switchCommand", opts.SwitchCommand})
	}
	if opts.K3sUnit != "" {
		extra = append(extra, [2]string{"k3sUnit", opts.K3sUnit})
	}
	return append(extra, [][2]string{
		{"marker", opts.Marker},
		{"activationLog", opts.ActivationLog},
		{"currentSystem", opts.CurrentSystemLink},
		{"activationExit", strconv.Itoa(opts.ActivationExit)},
		{"failMarker", opts.FailMarker},
		{"buildSleep", sleep},
		{"buildFail", fail},
		{"agent", opts.Agent},
		{"switchLog", opts.SwitchLog},
		{"switchSleep", switchSleep},
		{"switchSlowMarker", opts.SwitchSlowMarker},
	}...)
}

func withDefaults(opts FlakeOptions) FlakeOptions {
	if opts.Name == "" {
		opts.Name = "test"
	}
	if opts.System == "" {
		opts.System = GoSystem()
	}
	if opts.Kernel == "" {
		opts.Kernel = "kernel"
	}
	if opts.Initrd == "" {
		opts.Initrd = "initrd"
	}
	if opts.KernelModules == "" {
		opts.KernelModules = "kernel-modules"
	}
	return opts
}

// GoSystem returns the Nix system of the machine Go runs on.
func GoSystem() string { return rebuild.System() }

// nixString returns s as a Nix double-quoted string literal.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// nixIndented returns s as a Nix indented string in which ${…} still interpolates.
func nixIndented(s string) string {
	return "''" + strings.ReplaceAll(s, "''", "'''") + "''"
}
