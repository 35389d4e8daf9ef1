package gitsync

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

func tokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFetchUnreachable(t *testing.T) {
	addr := gittest.ClosedPort(t)
	key, _ := gittest.NewSSHKey(t, t.TempDir(), "client")
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, remote := range map[string]Remote{
		"http": {URL: "http://" + addr + "/repo.git"},
		"ssh":  {URL: "ssh://git@" + addr + "/repo.git", SSHKeyFile: key, KnownHostsFile: known},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRepo(t, remote)
			_, err := r.Fetch(context.Background())
			if !errors.Is(err, ErrUnreachable) || !IsTransient(err) {
				t.Errorf("Fetch(%s) = %v; want ErrUnreachable, transient", remote.URL, err)
			}
			if _, statErr := os.Stat(r.Dir); !os.IsNotExist(statErr) {
				t.Errorf("Fetch(%s) created %s", remote.URL, r.Dir)
			}
		})
	}
}

func TestFetchTimeout(t *testing.T) {
	// A server that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	r := newRepo(t, Remote{URL: "http://" + l.Addr().String() + "/repo.git"})
	r.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err = r.Fetch(context.Background())
	if !errors.Is(err, ErrUnreachable) || !IsTransient(err) {
		t.Errorf("Fetch with timeout = %v; want ErrUnreachable, transient", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Fetch took %v with a 200ms timeout", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r.Timeout = 0
	_, err = r.Fetch(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !IsTransient(err) {
		t.Errorf("Fetch(ctx with deadline) = %v; want context.DeadlineExceeded, transient", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := r.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch(cancelled ctx) = %v; want context.Canceled", err)
	}
}

func TestFetchBadToken(t *testing.T) {
	f, _ := newFixture(t)
	url := gittest.NewHTTPServer(t, f.bare, "right-token")
	for name, remote := range map[string]Remote{
		"wrong token": {URL: url, TokenFile: tokenFile(t, "wrong-token-1234")},
		"no token":    {URL: url},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newRepo(t, remote).Fetch(context.Background())
			if !errors.Is(err, ErrAuth) || IsTransient(err) {
				t.Fatalf("Fetch = %v; want ErrAuth, not transient", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "wrong-token-1234") || strings.Contains(msg, "right-token") {
				t.Errorf("Fetch error %q contains the token", msg)
			}
			if !strings.HasPrefix(msg, "fetching "+url+": authentication required") {
				t.Errorf("Fetch error = %q; want it to start with %q", msg, "fetching "+url+": authentication required")
			}
		})
	}
}

func TestFetchSSHWrongKeys(t *testing.T) {
	f, _ := newFixture(t)
	url, key, known := gittest.NewSSHServer(t, f.bare)
	otherKey, otherPub := gittest.NewSSHKey(t, t.TempDir(), "other")
	wrongKnown := filepath.Join(t.TempDir(), "known_hosts")
	host := strings.TrimPrefix(strings.SplitN(url, "/", 4)[2], "root@")
	if i := strings.Index(host, "@"); i >= 0 {
		host = host[i+1:]
	}
	h, port, _ := strings.Cut(host, ":")
	if err := os.WriteFile(wrongKnown, []byte("["+h+"]:"+port+" "+otherPub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		remote     Remote
		want       error
		wantInText string
	}{
		{"mismatched host key", Remote{URL: url, SSHKeyFile: key, KnownHostsFile: wrongKnown}, ErrHostKey, wrongKnown},
		{"unknown host", Remote{URL: url, SSHKeyFile: key, KnownHostsFile: empty}, ErrHostKey, empty},
		{"missing known_hosts", Remote{URL: url, SSHKeyFile: key}, ErrAuth, "known_hosts"},
		{"unauthorized client key", Remote{URL: url, SSHKeyFile: otherKey, KnownHostsFile: known}, ErrAuth, "unable to authenticate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newRepo(t, tc.remote).Fetch(context.Background())
			if !errors.Is(err, tc.want) || IsTransient(err) {
				t.Fatalf("Fetch = %v; want %v, not transient", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantInText) {
				t.Errorf("Fetch error = %q; want it to mention %q", err, tc.wantInText)
			}
		})
	}
}

func TestClassifyLocalDisk(t *testing.T) {
	// What go-git returns when the pack cannot be written: a path error
	// around ENOSPC, which also looks like an *os.PathError, not a network one.
	full := &os.PathError{Op: "write", Path: "/var/lib/avalanche-agent/repo.git/objects/pack/tmp_pack_1", Err: syscall.ENOSPC}
	err := classify(context.Background(), full, "")
	if !errors.Is(err, ErrLocalDisk) || errors.Is(err, ErrUnreachable) || !IsTransient(err) {
		t.Errorf("classify(ENOSPC) = %v; want ErrLocalDisk, transient, not unreachable", err)
	}
	if !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("classify(ENOSPC) = %q; want the cause in the text", err)
	}
}
