package cloudcmd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/hetzner/hetznertest"
	"github.com/google/go-cmp/cmp"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxVtj1Vb8iqkd0ZUcR5Q3uSeSjc8mTqSw4b0n2Ur4Tl operator@calypso"

type env struct {
	fake    *hetznertest.Server
	keyFile string
	vars    map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{fake: hetznertest.New(t), keyFile: filepath.Join(t.TempDir(), "id.pub")}
	if err := os.WriteFile(e.keyFile, []byte(testKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.vars = map[string]string{"HCLOUD_ENDPOINT": e.fake.URL, "HCLOUD_TOKEN": hetznertest.Token}
	return e
}

func (e *env) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, &out, &errOut, func(k string) string { return e.vars[k] })
	return out.String(), err
}

func (e *env) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.run(t, args...)
	if err != nil {
		t.Fatalf("Run(%q) = %v\n%s", args, err, out)
	}
	return out
}

// ids hides the fake's resource IDs so expectations read stably.
var ids = regexp.MustCompile(`/firewalls/\d+`)

func TestProvisionDryRun(t *testing.T) {
	e := newEnv(t)
	r := newFlakeRepo(t)
	out := e.mustRun(t, "provision-exit-node", "--dry-run", "--ssh-key-file", e.keyFile, "--home-ip", "203.0.113.7", "--location", "fsn1",
		"--flake", flakeAt(r.signed), "--allowed-signers", r.signers, "--repo", r.dir)
	ud, _ := UserData(UserDataOptions{AuthorizedKey: testKey, Flake: flakeAt(r.signed)})
	want := `dry run, nothing is changed
provision exit node "avalanche-exit-node": 3 API call(s)
  1. POST   /ssh_keys                                  create ssh key "avalanche-exit-node" (ssh-ed25519)
  2. POST   /firewalls                                 create firewall "avalanche-exit-node": in tcp 22 from 203.0.113.7/32; in udp 41641 from 0.0.0.0/0, ::/0
  3. POST   /servers                                   create server "avalanche-exit-node" (cpx11 in fsn1, image debian-12, ssh key and firewall "avalanche-exit-node", ` + strconv.Itoa(len(ud)) + ` bytes of user data)
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("dry-run output (-want +got):\n%s", diff)
	}
	if m := e.fake.Mutations(); len(m) != 0 {
		t.Errorf("dry run made mutating calls %v", m)
	}
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	prov := []string{"provision-exit-node", "--ssh-key-file", e.keyFile, "--home-ip", "203.0.113.7"}
	if out := e.mustRun(t, prov...); !strings.Contains(out, "done: 3 call(s) made") {
		t.Errorf("provision output:\n%s", out)
	}
	ud, _ := e.fake.UserData("avalanche-exit-node")
	if !strings.HasPrefix(ud, "#cloud-config\n") || !strings.Contains(ud, "nixos-infect") || !strings.Contains(ud, testKey) {
		t.Errorf("user data does not run nixos-infect with the key:\n%s", ud)
	}
	e.fake.ResetCalls()
	if out := e.mustRun(t, prov...); !strings.Contains(out, "nothing to do") || len(e.fake.Mutations()) != 0 {
		t.Errorf("second provision: %q, mutations %v; want nothing to do", out, e.fake.Mutations())
	}

	out := e.mustRun(t, "update-home-ip", "--home-ip", "198.51.100.23", "--dry-run")
	wantPlan := `dry run, nothing is changed
point firewall "avalanche-exit-node" at home IP 198.51.100.23: 1 API call(s)
  1. POST   /firewalls/N/actions/set_rules          replace all rules of "avalanche-exit-node": in tcp 22 from 198.51.100.23/32; in udp 41641 from 0.0.0.0/0, ::/0 (was: in tcp 22 from 203.0.113.7/32; in udp 41641 from 0.0.0.0/0, ::/0)
`
	if diff := cmp.Diff(wantPlan, ids.ReplaceAllString(out, "/firewalls/N")); diff != "" {
		t.Errorf("update-home-ip dry run (-want +got):\n%s", diff)
	}
	e.mustRun(t, "update-home-ip", "--home-ip", "198.51.100.23")
	st := e.mustRun(t, "status")
	if !strings.Contains(st, "ssh from 198.51.100.23") || !strings.Contains(st, "cpx11 in nbg1") {
		t.Errorf("status:\n%s", st)
	}

	e.mustRun(t, "deprovision-exit-node")
	if s, f, k := e.fake.Counts(); s+f+k != 0 {
		t.Errorf("after deprovision: %d servers, %d firewalls, %d keys", s, f, k)
	}
	if out := e.mustRun(t, "deprovision-exit-node"); !strings.Contains(out, "nothing to do") {
		t.Errorf("second deprovision:\n%s", out)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("wrong\n"), 0o600)
	tests := []struct {
		name  string
		args  []string
		vars  map[string]string
		want  string
		usage bool
	}{
		{"no command", nil, nil, "missing command", true},
		{"unknown command", []string{"explode"}, nil, `unknown command "explode"`, true},
		{"missing key", []string{"provision-exit-node", "--home-ip", "203.0.113.7"}, nil, "--ssh-key-file is required", true},
		{"private home ip", []string{"update-home-ip", "--home-ip", "192.168.1.4"}, nil, "private address", false},
		{"no token", []string{"status"}, map[string]string{"HCLOUD_TOKEN": ""}, "no Hetzner Cloud token", false},
		{"bad token file", []string{"status", "--token-file", tokenFile}, nil, "unauthorized", false},
		{"unpinned installer", []string{"provision-exit-node", "--ssh-key-file", e.keyFile, "--home-ip", "203.0.113.7",
			"--nixos-infect-url", "https://raw.githubusercontent.com/elitak/nixos-infect/master/nixos-infect"}, nil, "needs --nixos-infect-sha256", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := e.vars
			e.vars = map[string]string{"HCLOUD_ENDPOINT": e.fake.URL, "HCLOUD_TOKEN": hetznertest.Token}
			for k, v := range tt.vars {
				e.vars[k] = v
			}
			defer func() { e.vars = saved }()
			_, err := e.run(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrUsage) != tt.usage {
				t.Errorf("Run(%q) = %v; want error containing %q (usage=%t)", tt.args, err, tt.want, tt.usage)
			}
		})
	}
}
