package nspawntest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMountUnitNameMatchesSystemdEscape(t *testing.T) {
	for _, where := range []string{"/run/avalanche-agent/secrets.d", "/", "/var/lib/x y", "/.hidden/a-b"} {
		out, err := exec.Command("systemd-escape", "--path", "--suffix=mount", where).Output()
		if err != nil {
			t.Fatalf("systemd-escape (apt-get install systemd): %v", err)
		}
		if got, want := MountUnitName(where), strings.TrimSpace(string(out)); got != want {
			t.Errorf("MountUnitName(%q) = %q; systemd-escape says %q", where, got, want)
		}
	}
}

func TestFilesRendersTheModulesService(t *testing.T) {
	u := Unit{
		Service: Service{Description: "d", WantedBy: []string{"multi-user.target"}, Wants: []string{"network-online.target"},
			After: []string{"network-online.target"}, Path: []string{"/nix/store/x-git"},
			ServiceConfig: map[string]any{"Type": "notify", "PrivateTmp": true, "WatchdogSec": "60s"}},
		Mounts: []Mount{{What: "ramfs", Where: "/run/a/s.d", Type: "ramfs", Options: "mode=0751",
			RequiredBy: []string{"a.service"}, Before: []string{"a.service"}}},
	}
	want := map[string]string{
		"a.service": `[Unit]
Description=d
Wants=network-online.target
After=network-online.target

[Service]
Environment="PATH=/nix/store/x-git/bin:/nix/store/x-git/sbin:` + HostPath + `"
PrivateTmp=true
Type=notify
WatchdogSec=60s

[Install]
WantedBy=multi-user.target
`,
		"run-a-s.d.mount": `[Unit]
Before=a.service

[Mount]
What=ramfs
Where=/run/a/s.d
Type=ramfs
Options=mode=0751

[Install]
RequiredBy=a.service
`,
	}
	if diff := cmp.Diff(want, u.Files("a")); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
}
