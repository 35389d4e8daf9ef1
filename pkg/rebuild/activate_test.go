package rebuild_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/google/go-cmp/cmp"
)

// host is a sandboxed stand-in for a NixOS machine: a profile directory,
// a current-system link and the log of switch-to-configuration calls.
type host struct {
	dir, profile, current, log, failMarker string
}

func newHost(t *testing.T) host {
	dir := t.TempDir()
	return host{
		dir:        dir,
		profile:    filepath.Join(dir, "profiles", "system"),
		current:    filepath.Join(dir, "current-system"),
		log:        filepath.Join(dir, "activation.log"),
		failMarker: filepath.Join(dir, "fail-activation"),
	}
}

// options returns flake options whose systems activate into h.
func (h host) options(marker string) nixtest.FlakeOptions {
	return nixtest.FlakeOptions{Marker: marker, ActivationLog: h.log,
		CurrentSystemLink: h.current, FailMarker: h.failMarker}
}

// reset forgets earlier activations.
func (h host) reset(t *testing.T) {
	for _, p := range []string{h.log, h.current, h.failMarker} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Dir(h.profile)); err != nil {
		t.Fatal(err)
	}
}

// activations returns the lines switch-to-configuration logged.
func (h host) activations(t *testing.T) []string {
	b, err := os.ReadFile(h.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// generation returns the profile's generation and target, 0 and "" when unset.
func (h host) generation() (int, string) {
	gen, target, err := rebuild.ProfileGeneration(h.profile)
	if err != nil {
		return 0, ""
	}
	return gen, target
}

func TestActivate(t *testing.T) {
	n := newNix(t)
	h := newHost(t)
	repo := nixtest.NewRepo(t, "main")
	stamp := time.Now().String()
	a := buildSystem(t, n, repo, h.options("a "+stamp))
	b := buildSystem(t, n, repo, h.options("b "+stamp))

	tests := []struct {
		action      string
		wantGen     int
		wantProfile string
		wantCurrent string
	}{
		{"switch", 2, b, b},
		{"boot", 2, b, ""},
		{"test", 0, "", b},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			h.reset(t)
			act := rebuild.Activation{Action: tt.action, Profile: h.profile}
			for _, out := range []string{a, b} {
				if err := n.Activate(context.Background(), out, act); err != nil {
					t.Fatalf("Activate(%s, %+v) = %v", out, act, err)
				}
			}
			want := []string{tt.action + " " + a, tt.action + " " + b}
			if diff := cmp.Diff(want, h.activations(t)); diff != "" {
				t.Errorf("switch-to-configuration calls (-want +got):\n%s", diff)
			}
			if gen, target := h.generation(); gen != tt.wantGen || target != tt.wantProfile {
				t.Errorf("profile after %s = generation %d -> %q; want %d -> %q", tt.action, gen, target, tt.wantGen, tt.wantProfile)
			}
			if current, _ := os.Readlink(h.current); current != tt.wantCurrent {
				t.Errorf("current system after %s = %q; want %q", tt.action, current, tt.wantCurrent)
			}
		})
	}

	t.Run("rollback", func(t *testing.T) {
		h.reset(t)
		act := rebuild.Activation{Action: "switch", Profile: h.profile}
		for _, out := range []string{a, b} {
			if err := n.Activate(context.Background(), out, act); err != nil {
				t.Fatalf("Activate(%s) = %v", out, err)
			}
		}
		if err := n.Rollback(context.Background(), a, act); err != nil {
			t.Fatalf("Rollback(%s) = %v", a, err)
		}
		current, _ := os.Readlink(h.current)
		if gen, target := h.generation(); gen != 3 || target != a || current != a {
			t.Errorf("after Rollback: generation %d -> %q, current %q; want 3 -> %q, current %q", gen, target, current, a, a)
		}
	})
}

func TestActivateSystemdRun(t *testing.T) {
	n := newNix(t)
	h := newHost(t)
	out := buildSystem(t, n, nixtest.NewRepo(t, "main"), h.options("systemd-run "+time.Now().String()))
	fake, calls := nixtest.FakeSystemdRun(t, h.dir)
	t.Setenv("LOCALE_ARCHIVE", "/run/current-system/sw/lib/locale/locale-archive")
	t.Setenv("NIXOS_NO_CHECK", "")
	os.Unsetenv("NIXOS_NO_CHECK")

	act := rebuild.Activation{Action: "switch", Profile: h.profile, SystemdRun: true, SystemdRunPath: fake,
		Unit: "avalanche-switch-0123abcd", InstallBootloader: true, Timeout: 10 * time.Minute}
	if err := n.Activate(context.Background(), out, act); err != nil {
		t.Fatalf("Activate(%s, %+v) = %v", out, act, err)
	}
	want := [][]string{{
		"--unit=avalanche-switch-0123abcd", "--wait", "--collect", "--no-ask-password", "--service-type=exec",
		"--property=RuntimeMaxSec=600",
		"--setenv=NIXOS_INSTALL_BOOTLOADER=1",
		"--setenv=LOCALE_ARCHIVE=/run/current-system/sw/lib/locale/locale-archive",
		out + "/bin/switch-to-configuration", "switch",
	}}
	if diff := cmp.Diff(want, nixtest.SystemdRunCalls(t, calls)); diff != "" {
		t.Errorf("systemd-run calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"switch " + out}, h.activations(t)); diff != "" {
		t.Errorf("switch-to-configuration calls (-want +got):\n%s", diff)
	}
	if gen, target := h.generation(); gen != 1 || target != out {
		t.Errorf("profile = generation %d -> %q; want 1 -> %q", gen, target, out)
	}

	act.Unit = ""
	if err := n.Activate(context.Background(), out, act); err != nil {
		t.Fatalf("Activate(%s, %+v) = %v", out, act, err)
	}
	got := nixtest.SystemdRunCalls(t, calls)
	wantUnit := "--unit=avalanche-switch-" + filepath.Base(out)[:12]
	if len(got) != 2 || got[1][0] != wantUnit {
		t.Errorf("systemd-run calls = %q; want a second call with %s", got, wantUnit)
	}
}

func TestActivateError(t *testing.T) {
	n := newNix(t)
	h := newHost(t)
	repo := nixtest.NewRepo(t, "main")
	opts := h.options("exit 3 " + time.Now().String())
	opts.ActivationExit = 3
	exit3 := buildSystem(t, n, repo, opts)
	ok := buildSystem(t, n, repo, h.options("ok "+time.Now().String()))
	fake, _ := nixtest.FakeSystemdRun(t, h.dir)

	tests := []struct {
		name       string
		out        string
		marker     bool
		systemdRun bool
		wantExit   int
		wantTail   string
	}{
		{"exit status", exit3, false, false, 3, nixtest.ActivationFailMessage + ": exit 3"},
		{"exit status under systemd-run", exit3, false, true, 3, nixtest.ActivationFailMessage + ": exit 3"},
		{"fail marker", ok, true, false, 1, nixtest.ActivationFailMessage + ": " + h.failMarker + " exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.reset(t)
			if tt.marker {
				if err := os.WriteFile(h.failMarker, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			act := rebuild.Activation{Action: "switch", Profile: h.profile, SystemdRun: tt.systemdRun, SystemdRunPath: fake}
			err := n.Activate(context.Background(), tt.out, act)
			var ce *rebuild.CommandError
			if !errors.Is(err, rebuild.ErrActivate) || !errors.As(err, &ce) {
				t.Fatalf("Activate(%s) = %v; want ErrActivate from a CommandError", tt.out, err)
			}
			if ce.ExitCode != tt.wantExit || !strings.Contains(ce.Tail, tt.wantTail) {
				t.Errorf("Activate(%s) = exit %d, tail %q; want exit %d, tail with %q", tt.out, ce.ExitCode, ce.Tail, tt.wantExit, tt.wantTail)
			}
		})
	}

	err := n.Activate(context.Background(), ok, rebuild.Activation{Action: "dry-run"})
	if !errors.Is(err, rebuild.ErrActivate) || !strings.Contains(err.Error(), "dry-run") {
		t.Errorf("Activate(action dry-run) = %v; want ErrActivate naming the action", err)
	}
}

func TestProfileGeneration(t *testing.T) {
	dir := t.TempDir()
	links := map[string]string{
		"system":          "system-42-link",
		"system-42-link":  "/nix/store/aaaa-nixos-system-eagle",
		"odd":             "/nix/store/bbbb-not-a-generation",
		"broken":          "broken-7-link",
		"other":           "system-3-link",
		"abs":             filepath.Join(dir, "abs-5-link"),
		"abs-5-link":      "/nix/store/cccc-nixos-system-eagle",
		"system-x-link":   "/nix/store/dddd",
		"badnum":          "system-x-link",
		"system-3-link":   "/nix/store/eeee",
		"missing-profile": "",
	}
	for name, target := range links {
		if target == "" {
			continue
		}
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		profile    string
		wantGen    int
		wantTarget string
		wantErr    bool
	}{
		{"system", 42, "/nix/store/aaaa-nixos-system-eagle", false},
		{"abs", 5, "/nix/store/cccc-nixos-system-eagle", false},
		{"odd", 0, "", true},
		{"broken", 0, "", true},
		{"other", 0, "", true},
		{"badnum", 0, "", true},
		{"missing-profile", 0, "", true},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, tt.profile)
		gen, target, err := rebuild.ProfileGeneration(p)
		if gen != tt.wantGen || target != tt.wantTarget || (err != nil) != tt.wantErr {
			t.Errorf("ProfileGeneration(%q) = %d, %q, %v; want %d, %q, error %v", p, gen, target, err, tt.wantGen, tt.wantTarget, tt.wantErr)
		}
	}
}
