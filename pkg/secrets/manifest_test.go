package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeManifest(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadManifest(t *testing.T) {
	p := writeManifest(t, `{"version":1,"secrets":[{"name":"restic/password","sopsFile":"/nix/store/abc-possum.yaml",
	 "key":"restic/password","format":"","owner":"restic","group":"","mode":"0440",
	 "restartUnits":["restic-backups.service"],"reloadUnits":[]}]}`)
	m, err := LoadManifest(p)
	if err != nil {
		t.Fatalf("LoadManifest(%q) = %v", p, err)
	}
	want := &Manifest{Version: 1, Secrets: []Secret{{
		Name: "restic/password", SopsFile: "/nix/store/abc-possum.yaml", Key: "restic/password",
		Owner: "restic", Mode: "0440", RestartUnits: []string{"restic-backups.service"}, ReloadUnits: []string{},
	}}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("LoadManifest(%q) mismatch (-want +got):\n%s", p, diff)
	}
	if f := m.Secrets[0].EffectiveFormat(); f != "yaml" {
		t.Errorf("EffectiveFormat() = %q; want yaml", f)
	}
}

func TestLoadManifestMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secrets.json")
	if _, err := LoadManifest(p); !errors.Is(err, ErrNoManifest) {
		t.Errorf("LoadManifest(%q) = %v; want ErrNoManifest", p, err)
	}
}

func TestLoadManifestInvalid(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string // every one must appear in the error
	}{
		{"unknown-field", `{"version":1,"secrets":[],"extra":1}`, []string{`unknown field "extra"`}},
		{"trailing", `{"version":1,"secrets":[]} {}`, []string{"trailing data"}},
		{"version", `{"version":2,"secrets":[]}`, []string{"version 2 is not supported"}},
		{"every-problem", `{"version":1,"secrets":[
			{"name":"../etc/shadow","sopsFile":"/nix/store/a.yaml"},
			{"name":"/abs","sopsFile":"/nix/store/a.yaml"},
			{"name":"","sopsFile":"relative.yaml"},
			{"name":"a/./b","sopsFile":"/nix/store/a.yaml","mode":"0999"},
			{"name":"ok","sopsFile":"/nix/store/a.yaml","format":"toml","mode":"4755","key":"a//b"},
			{"name":"dup","sopsFile":"/nix/store/a.yaml"},
			{"name":"dup","sopsFile":"/nix/store/a.yaml"},
			{"name":"dup/inner","sopsFile":"/nix/store/a.yaml"}]}`,
			[]string{
				`name "../etc/shadow" escapes`, `name "/abs" is absolute`, "name is empty",
				`sopsFile "relative.yaml" is not an absolute path`, `name "a/./b" escapes`,
				`mode "0999"`, `format "toml"`, `mode "4755"`, `key "a//b" has an empty component`,
				`duplicate name "dup"`, `secret "dup/inner" is inside secret "dup"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeManifest(t, tt.content)
			_, err := LoadManifest(p)
			if err == nil {
				t.Fatalf("LoadManifest(%q) = nil; want errors %q", tt.content, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("LoadManifest() = %v; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestEffectiveFormat(t *testing.T) {
	tests := []struct{ file, format, want string }{
		{"/nix/store/x-a.yaml", "", "yaml"},
		{"/nix/store/x-a.yml", "", "yaml"},
		{"/nix/store/x-a.json", "", "json"},
		{"/nix/store/x-a.env", "", "dotenv"},
		{"/nix/store/x-a.ini", "", "ini"},
		{"/nix/store/x-cert.pem", "", "binary"},
		{"/nix/store/x-a.yaml", "binary", "binary"},
	}
	for _, tt := range tests {
		s := Secret{SopsFile: tt.file, Format: tt.format}
		if got := s.EffectiveFormat(); got != tt.want {
			t.Errorf("Secret{SopsFile: %q, Format: %q}.EffectiveFormat() = %q; want %q", tt.file, tt.format, got, tt.want)
		}
	}
}

func TestUnitsToRestart(t *testing.T) {
	m := &Manifest{Version: 1, Secrets: []Secret{
		{Name: "a", RestartUnits: []string{"x.service", "y.service"}},
		{Name: "b", RestartUnits: []string{"x.service"}, ReloadUnits: []string{"y.service", "z.service"}},
		{Name: "c", ReloadUnits: []string{"w.service"}},
	}}
	restart, reload := UnitsToRestart(m, []string{"a", "b"})
	if diff := cmp.Diff([]string{"x.service", "y.service"}, restart); diff != "" {
		t.Errorf("UnitsToRestart() restart mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"z.service"}, reload); diff != "" {
		t.Errorf("UnitsToRestart() reload mismatch (-want +got):\n%s", diff)
	}
}
