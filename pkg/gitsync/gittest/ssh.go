package gittest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"testing"
	"time"
)

// sshdPath is where Debian's openssh-server installs sshd.
const sshdPath = "/usr/sbin/sshd"

// NewSSHServer runs a real sshd on 127.0.0.1 that lets a freshly generated
// client key log in as the current user, and returns an ssh:// URL for
// bareDir, the client's private key file and a known_hosts file holding
// the server's host key. sshd is killed when the test ends.
func NewSSHServer(t testing.TB, bareDir string) (url, clientKeyFile, knownHostsFile string) {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Fatalf("sshd is needed for the SSH tests (apt-get install openssh-server; .ci/install does): %v", err)
	}
	dir := t.TempDir()
	hostKey, hostPub := NewSSHKey(t, dir, "host")
	clientKey, clientPub := NewSSHKey(t, dir, "client")
	writeFile(t, filepath.Join(dir, "authorized_keys"), clientPub)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	// The privilege separation directory must exist, even unused.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	port := startSSHD(t, dir, hostKey)
	writeFile(t, filepath.Join(dir, "known_hosts"), fmt.Sprintf("[127.0.0.1]:%d %s", port, hostPub))
	url = fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", u.Username, port, bareDir)
	return url, clientKey, filepath.Join(dir, "known_hosts")
}

// startSSHD starts sshd on a free port, retrying when another process
// grabbed the port first, and returns the port.
func startSSHD(t testing.TB, dir, hostKey string) int {
	t.Helper()
	var lastErr error
	for range 5 {
		port := freePort(t)
		cfg := filepath.Join(dir, "sshd_config")
		writeFile(t, cfg, sshdConfig(dir, hostKey, port))
		cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", sshdPath, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := waitListening(port, exited); err != nil {
			lastErr = fmt.Errorf("%v: %s", err, stderr.String())
			_ = cmd.Process.Kill()
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		return port
	}
	t.Fatalf("starting sshd: %v", lastErr)
	return 0
}

func sshdConfig(dir, hostKey string, port int) string {
	return fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
PermitRootLogin yes
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
LogLevel ERROR
UseDNS no

`, port, hostKey, filepath.Join(dir, "authorized_keys"))
}

// waitListening waits until port accepts connections or sshd exits.
func waitListening(port int, exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("sshd exited: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("sshd not listening on port %d after 10s", port)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ClosedPort returns a loopback address nobody listens on, for
// unreachable-remote tests.
func ClosedPort(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
