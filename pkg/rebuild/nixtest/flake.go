package nixtest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
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
}

// WriteFlake writes flake.nix (and opts.Files) into dir. The flake has no
// inputs and its toplevel depends only on literals and on the files named
// in SecretsManifest, never on the whole flake source, so a commit that
// only changes other files (kubernetes/…) leaves the output path unchanged.
func WriteFlake(dir string, opts FlakeOptions) error {
	for name, content := range opts.Files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flakeNix(opts)), 0o644)
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
if [ -n "$agent" ]; then
  /bin/mkdir -p "$out/sw/bin"
  printf '#!/bin/sh\n# %s\n' "$agent" > "$out/sw/bin/avalanche-agent"
fi
if [ -n "$secretsManifest" ]; then
  printf '%s' "$secretsManifest" > "$out/etc/avalanche-agent/secrets.json"
fi
/bin/cat > "$out/bin/switch-to-configuration" <<SCRIPT
#!/bin/sh
action="\$1"
if [ -n "$switchLog" ]; then echo "begin \$action $out" >> "$switchLog"; fi
if [ -n "$switchSleep" ] && { [ -z "$switchSlowMarker" ] || [ -e "$switchSlowMarker" ]; }; then /bin/sleep "$switchSleep"; fi
if [ -n "$activationLog" ]; then echo "\$action $out" >> "$activationLog"; fi
if [ -n "$failMarker" ] && [ -e "$failMarker" ]; then
  echo "` + ActivationFailMessage + `: $failMarker exists" >&2
  exit 1
fi
case "\$action" in
  switch|test) if [ -n "$currentSystem" ]; then /bin/ln -sfn "$out" "$currentSystem"; fi ;;
esac
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
	opts = withDefaults(opts)
	toplevel := "toplevel"
	if opts.EvalError != "" {
		toplevel = "throw " + nixString(opts.EvalError)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  description = \"avalanche test flake\";\n  outputs = { self }: let\n")
	fmt.Fprintf(&b, "    kernel = builtins.toFile \"kernel\" %s;\n", nixString(opts.Kernel))
	fmt.Fprintf(&b, "    initrd = builtins.toFile \"initrd\" %s;\n", nixString(opts.Initrd))
	fmt.Fprintf(&b, "    modules = builtins.toFile \"kernel-modules\" %s;\n", nixString(opts.KernelModules))
	fmt.Fprintf(&b, "    toplevel = derivation {\n")
	fmt.Fprintf(&b, "      name = %s;\n", nixString("nixos-system-"+opts.Name))
	fmt.Fprintf(&b, "      system = %s;\n", nixString(opts.System))
	fmt.Fprintf(&b, "      builder = \"/bin/sh\";\n")
	fmt.Fprintf(&b, "      args = [ \"-c\" %s ];\n", nixString(builderScript))
	fmt.Fprintf(&b, "      inherit kernel initrd modules;\n")
	for _, kv := range derivationAttrs(opts) {
		fmt.Fprintf(&b, "      %s = %s;\n", kv[0], nixString(kv[1]))
	}
	fmt.Fprintf(&b, "      secretsManifest = %s;\n", nixIndented(opts.SecretsManifest))
	fmt.Fprintf(&b, "    };\n  in {\n")
	fmt.Fprintf(&b, "    nixosConfigurations.%s.config.system.build.toplevel = %s;\n", nixString(opts.Name), toplevel)
	fmt.Fprintf(&b, "  };\n}\n")
	return b.String()
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
	return [][2]string{
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
	}
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

// GoSystem returns the Nix system name of the machine Go runs on.
func GoSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-linux"
}

// nixString returns s as a Nix double-quoted string literal.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// nixIndented returns s as a Nix indented string in which ${…} still interpolates.
func nixIndented(s string) string {
	return "''" + strings.ReplaceAll(s, "''", "'''") + "''"
}
