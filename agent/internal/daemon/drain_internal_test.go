package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestK3sRestarts: the agent drains when switch-to-configuration would
// restart or stop k3s.service, judged from the unit files of both systems.
func TestK3sRestarts(t *testing.T) {
	unit := "[Service]\nExecStart=/nix/store/aaa-k3s-1.33/bin/k3s server\n"
	tests := []struct {
		name      string
		cur, next map[string]string // files under etc/systemd/system
		want      string            // "" or a word of the reason
	}{
		{"same unit", map[string]string{"k3s.service": unit}, map[string]string{"k3s.service": unit}, ""},
		{"new k3s", map[string]string{"k3s.service": unit},
			map[string]string{"k3s.service": strings.Replace(unit, "1.33", "1.34", 1)}, "restarted"},
		{"drop-in changed", map[string]string{"k3s.service": unit, "k3s.service.d/overrides.conf": "[Service]\nEnvironment=A=1\n"},
			map[string]string{"k3s.service": unit, "k3s.service.d/overrides.conf": "[Service]\nEnvironment=A=2\n"}, "restarted"},
		{"drop-in added", map[string]string{"k3s.service": unit},
			map[string]string{"k3s.service": unit, "k3s.service.d/overrides.conf": "[Service]\nEnvironment=A=2\n"}, "restarted"},
		{"restartIfChanged false", map[string]string{"k3s.service": unit},
			map[string]string{"k3s.service": "[Unit]\nX-RestartIfChanged=false\n" + unit}, ""},
		{"k3s removed", map[string]string{"k3s.service": unit}, map[string]string{}, "stopped"},
		{"k3s added", map[string]string{}, map[string]string{"k3s.service": unit}, ""},
		{"no k3s", map[string]string{"sshd.service": "a"}, map[string]string{"sshd.service": "b"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur, next := system(t, tt.cur), system(t, tt.next)
			got := k3sRestarts(cur, next)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("k3sRestarts(%v → %v) = %q; want %q", tt.cur, tt.next, got, tt.want)
			}
		})
	}
}

// system makes a toplevel directory holding files under etc/systemd/system.
func system(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, "etc/systemd/system", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
