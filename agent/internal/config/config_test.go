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
		{"drain.enable", c.Deploy.Drain.Enable, false},
		{"drain.kubeconfig", c.Deploy.Drain.Kubeconfig, "/etc/rancher/k3s/k3s.yaml"},
		{"drain.node", c.Deploy.Drain.Node, c.Hostname},
		{"drain.timeout", c.Deploy.Drain.Timeout.D(), 15 * time.Minute},
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
  "deploy": {"action": "dance", "reboot": {"window": "25:00-03:00"}, "buildTimeout": "soon"},
  "secrets": {"ageKeyFiles": ["relative/key.txt"]},
  "exitNode": {"enable": true}
}`)
	_, err := Load(p)
	if err == nil {
		t.Fatalf("Load(%q) = nil; want errors", p)
	}
	for _, want := range []string{
		`colour: unknown key`, `repository.extra: unknown key`, "version: 2 is not supported",
		`hostname: "bad host"`, `repository.url: "ftp://example/repo" has scheme "ftp"`, `pollInterval: "10ms" is too short`,
		`deploy.action: "dance"`, "deploy.reboot.window", `secrets.ageKeyFiles[0]: "relative/key.txt" is not an absolute path`,
		"exitNode.enable needs exitNode.authKeyFile", `deploy.buildTimeout: "soon" is not a duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%q) error lacks %q:\n%v", p, want, err)
		}
	}
}

// cfg is a valid config with extra top-level keys spliced in.
func cfg(extra string) string {
	return `{"version":1,"hostname":"h","repository":{"url":"https://git.example/a.git"}` + extra + `}`
}

// TestParseErrorNamesKey: each kind of bad value gives one error that
// starts with its key path and says what the key wants.
func TestParseErrorNamesKey(t *testing.T) {
	tests := []struct{ kind, json, want string }{
		{"duration", cfg(`,"pollInterval":"soon"`), `pollInterval: "soon" is not a duration (want e.g. "60s", "5m")`},
		{"duration number", cfg(`,"pollInterval":60`), `pollInterval: 60 is not a duration (want a string such as "60s", "5m")`},
		{"duration nested", cfg(`,"deploy":{"confirmTimeout":"2 minutes"}`), `deploy.confirmTimeout: "2 minutes" is not a duration (want e.g. "60s", "5m")`},
		{"duration too short", cfg(`,"homeIP":{"interval":"-5m"}`), `homeIP.interval: "-5m0s" is too short (want at least "1s", e.g. "60s", "5m")`},
		{"enum action", cfg(`,"deploy":{"action":"swap"}`), `deploy.action: "swap" is not one of switch, boot, test`},
		{"enum log level", cfg(`,"log":{"level":"loud"}`), `log.level: "loud" is not one of debug, info, warn, error`},
		{"URL scheme", `{"version":1,"hostname":"h","repository":{"url":"gopher://x/y"}}`,
			`repository.url: "gopher://x/y" has scheme "gopher" (want an https://, ssh:// or file:// URL, user@host:path or an absolute path)`},
		{"URL empty", `{"version":1,"hostname":"h","repository":{}}`,
			`repository.url: is empty (want an https://, ssh:// or file:// URL, user@host:path or an absolute path)`},
		{"URL no host", `{"version":1,"hostname":"h","repository":{"url":"https:///a.git"}}`,
			`repository.url: "https:///a.git" has no host (want e.g. "https://git.example/fleet/avalanche.git")`},
		{"listen address", cfg(`,"metrics":{"listen":"9464"}`), `metrics.listen: "9464" is not a listen address (want host:port, e.g. "127.0.0.1:9464" or ":9464")`},
		{"path", cfg(`,"stateDir":"var/lib/agent"`), `stateDir: "var/lib/agent" is not an absolute path (want it to start with /)`},
		{"path file", cfg(`,"webhook":{"secretFile":"hook.key"}`), `webhook.secretFile: "hook.key" is not an absolute path (want it to start with /)`},
		{"path repository", `{"version":1,"hostname":"h","repository":{"url":"https://g.example/a","tokenFile":"token"}}`,
			`repository.tokenFile: "token" is not an absolute path (want it to start with /)`},
		{"path in list", cfg(`,"verify":{"gpgKeyFiles":["/k.asc","k2.asc"]}`), `verify.gpgKeyFiles[1]: "k2.asc" is not an absolute path (want it to start with /)`},
		{"string type", cfg(`,"flakeOutput":5`), `flakeOutput: 5 is not a string`},
		{"number type", cfg(`,"deploy":{"keepGCRoots":"3"}`), `deploy.keepGCRoots: "3" is not a whole number`},
		{"bool type", cfg(`,"deploy":{"systemdRun":"yes"}`), `deploy.systemdRun: "yes" is not true or false`},
		{"list type", cfg(`,"deploy":{"healthChecks":"true"}`), `deploy.healthChecks: "true" is not a list`},
		{"list item type", cfg(`,"deploy":{"healthChecks":["true",3]}`), `deploy.healthChecks[1]: 3 is not a string`},
		{"object type", cfg(`,"deploy":"fast"`), `deploy: "fast" is not an object`},
		{"drain helper", cfg(`,"deploy":{"drain":{"helper":"avalanche-drain"}}`), `deploy.drain.helper: "avalanche-drain" is not an absolute path (want it to start with /)`},
		{"drain timeout", cfg(`,"deploy":{"drain":{"timeout":"500ms"}}`), `deploy.drain.timeout: "500ms" is too short (want at least "1s", e.g. "60s", "5m")`},
		{"drain node", cfg(`,"deploy":{"drain":{"enable":true,"node":"Raccoon_01"}}`),
			`deploy.drain.node: "Raccoon_01" is not a Kubernetes node name (want k3s's node name: lowercase letters, digits, '-' and '.'; default the host name)`},
		{"unknown key", cfg(`,"colour":"blue"`), `colour: unknown key (see docs/config.md for the keys)`},
		{"mistyped key", cfg(`,"deploy":{"buildtimeout":"1h"}`), `deploy.buildtimeout: unknown key (did you mean "deploy.buildTimeout"?)`},
		{"top level", `[1]`, `config: [1] is not an object (want {"version": 1, …})`},
		{"null", `null`, `config: null is not an object (want {"version": 1, …})`},
		{"version", `{"version":2,"hostname":"h","repository":{"url":"/srv/a"}}`, `version: 2 is not supported (want 1)`},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			_, err := Parse([]byte(tt.json))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse(%s) = %v;\nwant %s", tt.json, err, tt.want)
			}
		})
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
