package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaults(t *testing.T) {
	p := write(t, `{"version":1,"hostname":"eagle","repository":{"url":"https://git.example/fleet/avalanche.git","tokenFile":"/run/secrets/token"}}`)
	c, err := Load(p)
	if err != nil {
		t.Fatalf("Load(%q) = %v; want nil", p, err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"flakeOutput", c.FlakeOutput, "eagle"},
		{"branch", c.Repository.Branch, "main"},
		{"testingBranch", c.Repository.TestingBranch, "testing/eagle"},
		{"pollInterval", c.PollInterval.D(), 60 * time.Second},
		{"stateDir", c.StateDir, "/var/lib/avalanche-agent"},
		{"runtimeDir", c.RuntimeDir, "/run/avalanche-agent"},
		{"action", c.Deploy.Action, "switch"},
		{"profile", c.Deploy.Profile, "/nix/var/nix/profiles/system"},
		{"currentSystem", c.Deploy.CurrentSystem, "/run/current-system"},
		{"systemdRun", c.Deploy.SystemdRunEnabled(), true},
		{"confirmTimeout", c.Deploy.ConfirmTimeout.D(), 120 * time.Second},
		{"socket", c.SocketPath(), "/run/avalanche-agent/agent.sock"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v; want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	p := write(t, `{
  "version": 2,
  "hostname": "bad host",
  "colour": "blue",
  "repository": {"url": "ftp://example/repo", "tokenFile": "/t", "extra": 1},
  "pollInterval": "10ms",
  "deploy": {"action": "dance", "reboot": {"window": "25:00-03:00"}},
  "secrets": {"ageKeyFiles": ["relative/key.txt"]},
  "exitNode": {"enable": true}
}`)
	_, err := Load(p)
	if err == nil {
		t.Fatalf("Load(%q) = nil; want errors", p)
	}
	for _, want := range []string{
		`unknown key "colour"`, `unknown key "repository.extra"`, "version is 2",
		`hostname "bad host"`, "scheme must be https", "pollInterval 10ms",
		`deploy.action "dance"`, "deploy.reboot.window", `"relative/key.txt" must be absolute`,
		"exitNode.enable needs exitNode.authKeyFile",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%q) error lacks %q:\n%v", p, want, err)
		}
	}
}

func TestLoadMissingAndMalformed(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, ErrNoConfig) {
		t.Errorf("Load(missing) = %v; want ErrNoConfig", err)
	}
	p := write(t, `{"version":1,`)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Load(truncated) = %v; want an error naming the file", err)
	}
}

func TestRemoteKind(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://git.example/a.git", "https"},
		{"ssh://git@eagle:2222/avalanche.git", "ssh"},
		{"forgejo@eagle.internal:fleet/avalanche.git", "ssh"},
		{"/home/me/avalanche", "local"},
		{"file:///srv/avalanche.git", "local"},
	}
	for _, tt := range tests {
		got, err := RemoteKind(tt.url)
		if err != nil || got != tt.want {
			t.Errorf("RemoteKind(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "relative/path", "https://user:pw@host/x.git", "gopher://x/y"} {
		if _, err := RemoteKind(bad); err == nil {
			t.Errorf("RemoteKind(%q) = nil error; want one", bad)
		}
	}
}

func TestSSHNeedsKnownHosts(t *testing.T) {
	_, err := Parse([]byte(`{"version":1,"hostname":"h","repository":{"url":"ssh://git@eagle/avalanche.git"}}`))
	if err == nil || !strings.Contains(err.Error(), "knownHostsFile is required") || !strings.Contains(err.Error(), "sshKeyFile is required") {
		t.Errorf("Parse(ssh without keys) = %v; want both key errors", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"hostname":"h","repository":{"url":"/srv/x"}}`))
	f.Add([]byte(`{"version":1,"deploy":{"healthChecks":[""]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil && c.Validate() != nil {
			t.Errorf("Parse accepted a config Validate rejects")
		}
	})
}
