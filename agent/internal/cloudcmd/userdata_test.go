package cloudcmd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// fakeInstaller stands in for nixos-infect: it records what reached it.
const fakeInstaller = `printf '%s' "$NIX_CHANNEL" > "$OUT/channel"
printf '%s' "$PROVIDER" > "$OUT/provider"
printf '%s' "$NIXOS_IMPORT" > "$OUT/import"
`

// hostile values: quotes of every kind, command and parameter
// substitutions, backslashes, newlines, tabs, YAML and Nix syntax.
var hostile = UserDataOptions{
	InfectURL:     "https://example.org/x'$(touch pwned)\"`touch pwned`${HOME}/nixos-infect",
	Channel:       "nixos-25.05'\n$(touch pwned)\"`touch pwned` ${HOME} \\' # - [x]: y",
	Flake:         "git+https://git.example/a'b\"c?rev=0123456789abcdef0123456789abcdef01234567#vps$(touch pwned)`touch pwned`${builtins.currentTime}\n\ttouch pwned; \\\" ''${x}",
	AuthorizedKey: testKey + ` op"er'a$(touch pwned)${builtins.currentTime}\'' ; é`,
}

// userData is the part of cloud-config the exit node's user data uses.
type userData struct {
	WriteFiles []struct {
		Path        string `yaml:"path"`
		Permissions string `yaml:"permissions"`
		Content     string `yaml:"content"`
	} `yaml:"write_files"`
	Runcmd [][]string `yaml:"runcmd"`
}

func parseUserData(t *testing.T, s string) map[string]string {
	t.Helper()
	if !strings.HasPrefix(s, "#cloud-config\n") {
		t.Fatalf("user data does not start with #cloud-config:\n%s", s)
	}
	var ud userData
	if err := yaml.Unmarshal([]byte(s), &ud); err != nil {
		t.Fatalf("user data is not YAML: %v\n%s", err, s)
	}
	if want := [][]string{{"bash", installScript}}; !cmp.Equal(ud.Runcmd, want) {
		t.Errorf("runcmd = %q; want %q", ud.Runcmd, want)
	}
	files := map[string]string{}
	for _, f := range ud.WriteFiles {
		files[f.Path] = f.Content
	}
	return files
}

// sandbox is an empty directory with a bin directory of fakes first on
// PATH; commands run there with a clean environment.
type sandbox struct {
	dir, out string
}

func newSandbox(t *testing.T, fakes map[string]string) *sandbox {
	t.Helper()
	s := &sandbox{dir: t.TempDir()}
	s.out = filepath.Join(s.dir, "out")
	for _, d := range []string{"bin", "out", "tmp"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range fakes {
		if err := os.WriteFile(filepath.Join(s.dir, "bin", name), []byte("#!/usr/bin/env bash\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// bash runs script with bash in the sandbox.
func (s *sandbox) bash(t *testing.T, script string) (string, error) {
	t.Helper()
	file := filepath.Join(s.dir, "script.sh")
	if err := os.WriteFile(file, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s\n%s", err, out, script)
	}
	cmd := exec.Command("bash", file)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + filepath.Join(s.dir, "bin") + ":/usr/bin:/bin", "HOME=" + s.dir,
		"TMPDIR=" + filepath.Join(s.dir, "tmp"), "OUT=" + s.out}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *sandbox) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.out, name))
	if err != nil {
		t.Fatalf("the fake did not record %s: %v", name, err)
	}
	return string(b)
}

// checkNothingRan fails when any "touch pwned" of a value was executed.
func (s *sandbox) checkNothingRan(t *testing.T) {
	t.Helper()
	filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "pwned" {
			t.Errorf("a value was executed: %s exists", p)
		}
		return nil
	})
}

// installerSandbox serves fakeInstaller through a fake curl that records
// its URL.
func installerSandbox(t *testing.T) *sandbox {
	t.Helper()
	dir := t.TempDir()
	installer := filepath.Join(dir, "nixos-infect")
	if err := os.WriteFile(installer, []byte(fakeInstaller), 0o644); err != nil {
		t.Fatal(err)
	}
	curl := `while [ $# -gt 1 ]; do [ "$1" = -o ] && dest=$2; shift; done
printf '%s' "$1" > "$OUT/url"
cp ` + installer + ` "$dest"
`
	return newSandbox(t, map[string]string{"curl": curl})
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestInstallScriptCarriesValuesLiterally runs the install script of user
// data made from hostile values: curl gets the URL and nixos-infect the
// channel exactly as given, and nothing in them runs.
func TestInstallScriptCarriesValuesLiterally(t *testing.T) {
	o := hostile
	o.InfectSHA256 = strings.ToUpper(sha256Hex(fakeInstaller))
	ud, err := UserData(o)
	if err != nil {
		t.Fatalf("UserData(hostile) = %v", err)
	}
	s := installerSandbox(t)
	out, err := s.bash(t, parseUserData(t, ud)[installScript])
	if err != nil {
		t.Fatalf("install script: %v\n%s", err, out)
	}
	got := map[string]string{"url": s.read(t, "url"), "channel": s.read(t, "channel"),
		"provider": s.read(t, "provider"), "import": s.read(t, "import")}
	want := map[string]string{"url": hostile.InfectURL, "channel": hostile.Channel,
		"provider": "hetznercloud", "import": "./avalanche-bootstrap.nix"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values reaching curl and nixos-infect (-want +got):\n%s", diff)
	}
	s.checkNothingRan(t)
}

// TestInstallScriptRefusesOtherInstaller: when the download is not the
// pinned script, it is not run.
func TestInstallScriptRefusesOtherInstaller(t *testing.T) {
	ud, err := UserData(UserDataOptions{AuthorizedKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	s := installerSandbox(t)
	out, err := s.bash(t, parseUserData(t, ud)[installScript])
	if err == nil || !strings.Contains(out, "not the pinned "+DefaultInfectSHA256+": not running it") {
		t.Errorf("install script with another installer = %v\n%s\nwant a sha256 refusal", err, out)
	}
	if got := s.read(t, "url"); got != DefaultInfectURL {
		t.Errorf("downloaded %q; want %q", got, DefaultInfectURL)
	}
	if _, err := os.Stat(filepath.Join(s.out, "channel")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unverified installer ran (%v)", err)
	}
}

// TestBootstrapModuleCarriesValuesLiterally evaluates the bootstrap module
// of hostile user data with real Nix: root's key is the key as given, and
// its script, run with a fake nixos-rebuild, passes the flake as given.
func TestBootstrapModuleCarriesValuesLiterally(t *testing.T) {
	nixInstantiate, err := exec.LookPath("nix-instantiate")
	if err != nil {
		t.Fatalf("this test evaluates the module with nix-instantiate (.ci/install brings it): %v", err)
	}
	o := hostile
	o.InfectSHA256 = sha256Hex(fakeInstaller)
	ud, err := UserData(o)
	if err != nil {
		t.Fatalf("UserData(hostile) = %v", err)
	}
	module := filepath.Join(t.TempDir(), "avalanche-bootstrap.nix")
	if err := os.WriteFile(module, []byte(parseUserData(t, ud)["/etc/nixos/avalanche-bootstrap.nix"]), 0o644); err != nil {
		t.Fatal(err)
	}
	expr := `let m = import ` + module + ` { pkgs = { nixos-rebuild = "nixos-rebuild"; git = "git"; nix = "nix"; }; };
		in { keys = m.users.users.root.openssh.authorizedKeys.keys; script = m.systemd.services.avalanche-bootstrap.script; }`
	var stderr bytes.Buffer
	cmd := exec.Command(nixInstantiate, "--eval", "--strict", "--json", "--readonly-mode", "-E", expr)
	cmd.Stderr = &stderr
	js, err := cmd.Output()
	if err != nil {
		t.Fatalf("evaluating the bootstrap module: %v\n%s", err, stderr.String())
	}
	var got struct {
		Keys   []string
		Script string
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{hostile.AuthorizedKey}, got.Keys); diff != "" {
		t.Errorf("root's authorized keys (-want +got):\n%s", diff)
	}
	record := `printf '%s\0' "$@" > "$OUT/$(basename "$0")"` + "\n"
	s := newSandbox(t, map[string]string{"nixos-rebuild": record, "touch": record})
	if out, err := s.bash(t, got.Script); err != nil {
		t.Fatalf("bootstrap script: %v\n%s\n%s", err, out, got.Script)
	}
	if diff := cmp.Diff("switch\x00--flake\x00"+hostile.Flake+"\x00", s.read(t, "nixos-rebuild")); diff != "" {
		t.Errorf("nixos-rebuild arguments (-want +got):\n%s", diff)
	}
	if got := s.read(t, "touch"); got != "/var/lib/avalanche-bootstrap.done\x00" {
		t.Errorf("touch arguments = %q", got)
	}
	s.checkNothingRan(t)
}

func TestUserDataPinsTheInstaller(t *testing.T) {
	ud, err := UserData(UserDataOptions{AuthorizedKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	script := parseUserData(t, ud)[installScript]
	for _, want := range []string{shellWord(DefaultInfectURL), shellWord(DefaultInfectSHA256), "/" + DefaultInfectCommit + "/"} {
		if !strings.Contains(script, want) {
			t.Errorf("install script lacks %s:\n%s", want, script)
		}
	}
	if strings.Contains(ud, "| bash") || strings.Contains(ud, "/master/") {
		t.Errorf("user data pipes a download into a shell or follows a branch:\n%s", ud)
	}
}

func TestUserDataRefuses(t *testing.T) {
	sum := sha256Hex("x")
	rev := "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		o    UserDataOptions
		want string
	}{
		{"http installer", UserDataOptions{InfectURL: "http://example.org/nixos-infect", InfectSHA256: sum}, "must be an https URL"},
		{"other installer without sum", UserDataOptions{InfectURL: "https://example.org/nixos-infect"}, "needs --nixos-infect-sha256"},
		{"short sum", UserDataOptions{InfectSHA256: sum[:60]}, "is not a sha256"},
		{"sum not hex", UserDataOptions{InfectSHA256: "g" + sum[1:]}, "is not a sha256"},
		{"two keys", UserDataOptions{AuthorizedKey: testKey + "\n" + testKey}, "one key on one line"},
		{"control character", UserDataOptions{Flake: "git+https://x?rev=" + rev + "#vps\x1b[2J"}, `--flake "git+https://x?rev=` + rev + `#vps\x1b[2J": has control character U+001B at byte 62`},
		{"flake on a branch tip", UserDataOptions{Flake: "git+https://git.example/fleet/avalanche#vps"}, "does not pin a commit: add ?rev="},
		{"flake on a named ref", UserDataOptions{Flake: "git+https://git.example/fleet/avalanche?ref=main#vps"}, "does not pin a commit"},
		{"flake on a short rev", UserDataOptions{Flake: "git+https://git.example/fleet/avalanche?rev=" + rev[:12] + "#vps"}, "is not a full commit hash"},
		{"rev in the fragment", UserDataOptions{Flake: "git+https://git.example/fleet/avalanche#vps?rev=" + rev}, "does not pin a commit"},
		{"not UTF-8", UserDataOptions{Channel: "nixos-\xff"}, "is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := UserData(tt.o)
			if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("UserData(%+v) = %v; want a usage error containing %q", tt.o, err, tt.want)
			}
		})
	}
}
