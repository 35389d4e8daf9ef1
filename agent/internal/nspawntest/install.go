package nspawntest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// PackageDir is where the agent's package is installed in the container:
// the module's `package` (its bin/ holds avalanche-agent and avalanche-decrypt).
const PackageDir = "/usr/local/avalanche"

// EvalUnit evaluates the module with options (a Nix module expression, e.g.
// `{ services.avalanche-agent.repository.url = "/srv/fleet.git"; }`) through
// nixos/tests/eval and returns what it declares for the agent.
func EvalUnit(t testing.TB, options string) Unit {
	t.Helper()
	root := RepoRoot(t)
	expr := fmt.Sprintf(`(import %s { nixpkgsLib = %s; repo = %s; }).agentUnit { package = %q; options = %s; }`,
		nixPath(filepath.Join(root, "nixos", "tests", "eval")), nixPath(nixpkgsLib(t, root)), nixPath(root), PackageDir, options)
	argv := []string{"nix-instantiate", "--eval", "--strict", "--json", "--readonly-mode", "-E", expr}
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%w: %s", err, tail(string(ee.Stderr)))
		}
		t.Fatalf("evaluating the module's unit: %v", err)
	}
	var u Unit
	if err := json.Unmarshal(out, &u); err != nil {
		t.Fatalf("decoding the module's unit: %v", err)
	}
	return u
}

// nixpkgsLib finds nixpkgs' lib/ as modules/fleet_test.go does: from
// $AVALANCHE_NIXPKGS_LIB, else shared/nixpkgs-lib/lib beside the repository
// or one of its parents.
func nixpkgsLib(t testing.TB, root string) string {
	t.Helper()
	if dir := os.Getenv("AVALANCHE_NIXPKGS_LIB"); dir != "" {
		return dir
	}
	for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
		cand := filepath.Join(dir, "shared", "nixpkgs-lib", "lib")
		if _, err := os.Stat(filepath.Join(cand, "modules.nix")); err == nil {
			return cand
		}
		if dir == "/" {
			break
		}
	}
	t.Fatal("nixpkgs' lib/ not found: set AVALANCHE_NIXPKGS_LIB (see modules/fleet_test.go)")
	return ""
}

func nixPath(dir string) string {
	s := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`).Replace(dir)
	return `(/. + "` + s + `")`
}

var builds sync.Map // tags -> *built

type built struct {
	once sync.Once
	dir  string
	err  error
}

// BuildAgent builds avalanche-agent and avalanche-decrypt (with the given
// build tags, e.g. "failpoint") once per test binary and returns the
// directory holding them.
func BuildAgent(t testing.TB, tags string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(tags, &built{})
	b := v.(*built)
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "nspawntest-agent-")
		if b.err != nil {
			return
		}
		for _, pkg := range []string{"./agent/cmd/avalanche-agent", "./agent/cmd/avalanche-decrypt"} {
			argv := []string{"go", "build", "-tags=" + tags, "-o", filepath.Join(b.dir, filepath.Base(pkg)), pkg}
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Dir = RepoRoot(t)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.err = fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(string(out)))
				return
			}
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.dir
}

// nixConf makes the rootfs's nix-bin usable by a root-only agent: no build
// users, no sandbox (inside a container), flakes on, no substituters.
const nixConf = `build-users-group =
sandbox = false
experimental-features = nix-command flakes
substituters =
`

// stage2 stands in for what NixOS's stage 2 does at boot: /run/current-system
// and /run/booted-system point at the system profile's target.
const stage2 = `[Unit]
Description=NixOS stage 2 stand-in: /run/current-system from the system profile
DefaultDependencies=no
Before=avalanche-agent.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'p=$(readlink -f /nix/var/nix/profiles/system) && [ -e "$p" ] && ln -sfn "$p" /run/current-system && ln -sfn "$p" /run/booted-system || true'

[Install]
WantedBy=multi-user.target
`

// Install puts the agent into m's root before boot: the binaries from
// binDir under PackageDir, the rendered config at /etc/avalanche-agent/config.json,
// the unit files rendered from u (enabled as NixOS links them), extra
// drop-in lines for the service (overrides a test states), nix.conf and the
// stage-2 stand-in.
func Install(t testing.TB, m *Machine, u Unit, binDir string, dropIn string) {
	t.Helper()
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(m.Root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, bin := range []string{"avalanche-agent", "avalanche-decrypt"} {
		data, err := os.ReadFile(filepath.Join(binDir, bin))
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(PackageDir, "bin", bin), data, 0o755)
	}
	cfg, err := json.MarshalIndent(u.AgentConfig, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	write("etc/avalanche-agent/config.json", cfg, 0o644)
	write("etc/nix/nix.conf", []byte(nixConf), 0o644)
	units := u.Files("avalanche-agent")
	units["nixos-stage2.service"] = stage2
	for name, text := range units {
		write(filepath.Join("etc/systemd/system", name), []byte(text), 0o644)
	}
	if dropIn != "" {
		write("etc/systemd/system/avalanche-agent.service.d/test.conf", []byte("[Service]\n"+dropIn+"\n"), 0o644)
	}
	link := func(dir, name string) {
		p := filepath.Join(m.Root, "etc/systemd/system", dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink("../"+name, p); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	link("multi-user.target.wants", "avalanche-agent.service")
	link("multi-user.target.wants", "nixos-stage2.service")
	for _, mnt := range u.Mounts {
		for _, by := range mnt.RequiredBy {
			link(by+".requires", MountUnitName(mnt.Where))
		}
	}
	for _, g := range u.Groups {
		appendGroup(t, m.Root, g)
	}
}

// appendGroup adds group g to the root's /etc/group (as users.groups does).
func appendGroup(t testing.TB, root, g string) {
	t.Helper()
	out, err := exec.Command("chroot", root, "groupadd", "-f", g).CombinedOutput()
	if err != nil {
		t.Fatalf("groupadd %s in the container's root: %v: %s", g, err, out)
	}
}
