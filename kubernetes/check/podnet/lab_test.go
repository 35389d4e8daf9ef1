package podnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// The lab's addresses, only ever assigned inside its namespaces. The pod
// sits behind its node (the cluster side and the home uplink); the fake
// internet server answers on one address per family, reached from home
// through the node and from the tunnel through the exit node.
const (
	podIP4, podIP6   = "10.42.0.5", "fd00:42::5"
	nodeIP4, nodeIP6 = "10.42.0.1", "fd00:42::1"
	netIP4, netIP6   = "10.250.0.9", "fd00:250::9"
	// The pod's tailnet addresses, on tailscale0.
	tsIP4, tsIP6 = "100.64.0.2", "fd7a:115c:a1e0::2"
)

var labSeq atomic.Int32

// tmpName is a name for an interface while it is still in this process's
// namespace, unique among concurrent test processes (at most 15 bytes).
func tmpName(suffix string) string {
	return fmt.Sprintf("p%x-%x%s", os.Getpid(), labSeq.Add(1), suffix)
}

// lab is four network namespaces: pod (eth0 to the node, tailscale0 to the
// exit node), node (forwards the pod's eth0 to the internet: the home IP),
// inet (the fake internet server) and exit (forwards the tunnel to the
// internet).
type lab struct {
	t                     *testing.T
	pod, node, inet, exit string
	dir                   string // tools, scripts
	tun                   *tunnel
	helpers               []*exec.Cmd
}

// newLab builds the namespaces and starts the internet server; Cleanup
// removes everything.
func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("podnet needs root (network namespaces, iptables)")
	}
	for _, tool := range []string{"ip", "iptables-legacy", "ip6tables-legacy", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install iproute2, iptables and util-linux (.ci/install)", tool)
		}
	}
	id := fmt.Sprintf("pn%d-%d", os.Getpid(), labSeq.Add(1))
	l := &lab{t: t, pod: id + "-pod", node: id + "-node", inet: id + "-inet", exit: id + "-exit", dir: t.TempDir()}
	t.Cleanup(l.close)
	for _, ns := range []string{l.pod, l.node, l.inet, l.exit} {
		l.must("ip", "netns", "add", ns)
		l.ip(ns, "link", "set", "lo", "up")
		// No duplicate address detection: a tentative link-local address
		// delays neighbour discovery past the dial timeouts.
		l.in(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	l.wire()
	l.ip(l.inet, "addr", "add", netIP4+"/32", "dev", "lo")
	l.ip(l.inet, "addr", "add", netIP6+"/128", "dev", "lo", "nodad")
	l.start(l.inet, "serve", nil)
	l.count()
	return l
}

// wire connects the namespaces with veth pairs and routes.
func (l *lab) wire() {
	l.veth(l.pod, "eth0", podIP4+"/24", podIP6+"/64", l.node, "vpod", nodeIP4+"/24", nodeIP6+"/64")
	l.veth(l.node, "vinet", "10.200.0.1/24", "fd00:200::1/64", l.inet, "vnode", "10.200.0.2/24", "fd00:200::2/64")
	l.veth(l.exit, "vinet", "10.201.0.1/24", "fd00:201::1/64", l.inet, "vexit", "10.201.0.2/24", "fd00:201::2/64")
	for _, r := range [][]string{
		{l.pod, "default", "via", nodeIP4}, {l.pod, "-6", "default", "via", nodeIP6},
		{l.node, "10.250.0.0/24", "via", "10.200.0.2"}, {l.node, "-6", "fd00:250::/64", "via", "fd00:200::2"},
		{l.exit, "default", "via", "10.201.0.2"}, {l.exit, "-6", "default", "via", "fd00:201::2"},
		{l.inet, "10.42.0.0/24", "via", "10.200.0.1"}, {l.inet, "-6", "fd00:42::/64", "via", "fd00:200::1"},
		{l.inet, "100.64.0.0/10", "via", "10.201.0.1"}, {l.inet, "-6", "fd7a:115c:a1e0::/48", "via", "fd00:201::1"},
	} {
		var args []string
		rest := r[1:]
		if rest[0] == "-6" {
			args, rest = append(args, "-6"), rest[1:]
		}
		l.ip(r[0], append(append(args, "route", "add"), rest...)...)
	}
	for _, ns := range []string{l.node, l.exit} {
		l.in(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	}
}

func (l *lab) veth(ns1, if1, a4, a6, ns2, if2, b4, b6 string) {
	tmp1, tmp2 := tmpName("a"), tmpName("b")
	l.must("ip", "link", "add", tmp1, "type", "veth", "peer", "name", tmp2)
	l.must("ip", "link", "set", tmp1, "netns", ns1)
	l.must("ip", "link", "set", tmp2, "netns", ns2)
	for _, e := range [][4]string{{ns1, tmp1, if1, a4}, {ns2, tmp2, if2, b4}} {
		l.ip(e[0], "link", "set", e[1], "name", e[2])
		l.ip(e[0], "addr", "add", e[3], "dev", e[2])
		l.ip(e[0], "link", "set", e[2], "up")
	}
	l.ip(ns1, "addr", "add", a6, "dev", if1, "nodad")
	l.ip(ns2, "addr", "add", b6, "dev", if2, "nodad")
}

// count makes the node count every packet it forwards from the pod's eth0
// towards the internet: the packets that leave from the home IP.
func (l *lab) count() {
	l.in(l.node, "iptables-legacy", "-w", "-A", "FORWARD", "-i", "vpod", "-o", "vinet")
	l.in(l.node, "ip6tables-legacy", "-w", "-A", "FORWARD", "-i", "vpod", "-o", "vinet")
}

// homePackets returns how many packets the node forwarded from the pod to
// the internet since the last call, and zeroes the counters.
func (l *lab) homePackets() int {
	n := 0
	for _, tool := range []string{"iptables-legacy", "ip6tables-legacy"} {
		out := l.in(l.node, tool, "-w", "-L", "FORWARD", "-v", "-x", "-n", "-Z")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 3 {
			l.t.Fatalf("%s -L FORWARD in %s: no counting rule:\n%s", tool, l.node, out)
		}
		f := strings.Fields(lines[2])
		c, err := strconv.Atoi(f[0])
		if err != nil {
			l.t.Fatalf("%s -L FORWARD: %q: %v", tool, lines[2], err)
		}
		n += c
	}
	return n
}

// ip runs ip(8) on namespace ns (no mount namespace, unlike ip netns exec).
func (l *lab) ip(ns string, args ...string) string {
	l.t.Helper()
	return l.must(append([]string{"ip", "-n", ns}, args...)...)
}

// in runs argv in namespace ns and returns its output; a failure ends the test.
func (l *lab) in(ns string, argv ...string) string {
	l.t.Helper()
	return l.must(append([]string{"ip", "netns", "exec", ns}, argv...)...)
}

func (l *lab) must(argv ...string) string {
	l.t.Helper()
	out, err := run(nil, argv...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// run runs argv with env added to the test's environment; the error
// carries argv and the tail of the output.
func run(env []string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		s := out.String()
		if len(s) > 2000 {
			s = s[len(s)-2000:]
		}
		return s, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, s)
	}
	return out.String(), nil
}

// start runs a helper mode of the test binary in ns in the background and
// waits until it says it is ready.
func (l *lab) start(ns, mode string, env []string) {
	l.t.Helper()
	self, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, self)
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("starting helper %s in %s: %v", mode, ns, err)
	}
	l.helpers = append(l.helpers, cmd)
	line := make([]byte, 6)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
		l.t.Fatalf("helper %s in %s did not start: %q %v", mode, ns, line, err)
	}
}

// helper runs a helper mode of the test binary in ns to completion.
func (l *lab) helper(ns, mode string, env []string, args ...string) string {
	l.t.Helper()
	self, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	env = append(env, helperEnv+"="+mode, argsEnv+"="+strings.Join(args, " "))
	out, err := run(env, "ip", "netns", "exec", ns, self)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

func (l *lab) close() {
	for _, c := range l.helpers {
		c.Process.Kill()
		c.Wait()
	}
	if l.tun != nil {
		l.tun.close()
	}
	for _, ns := range []string{l.pod, l.node, l.inet, l.exit} {
		run(nil, "ip", "netns", "del", ns)
	}
}

// tunnel is a point-to-point link made of two TUN devices, one in the pod
// (tailscale0) and one in the exit node, with this process copying packets
// between them: WireGuard's place. Closing the pod's end deletes tailscale0
// and every route through it, as tailscaled's exit does.
type tunnel struct {
	pod, exit *os.File
	done      chan struct{}
}

func (l *lab) openTunnel() {
	l.t.Helper()
	pod := l.newTun(l.pod, "tailscale0")
	exit := l.newTun(l.exit, "wg0")
	l.tun = &tunnel{pod: pod, exit: exit, done: make(chan struct{}, 2)}
	go l.tun.copy(exit, pod)
	go l.tun.copy(pod, exit)
	l.ip(l.pod, "addr", "add", tsIP4+"/32", "dev", "tailscale0")
	l.ip(l.pod, "addr", "add", tsIP6+"/128", "dev", "tailscale0", "nodad")
	l.ip(l.exit, "route", "add", "100.64.0.0/10", "dev", "wg0")
	l.ip(l.exit, "-6", "route", "add", "fd7a:115c:a1e0::/48", "dev", "wg0")
	// A real exit node has no way into the home's pod network: what the
	// pod sends there through the tunnel is lost (the lab's internet
	// could route it back to the node).
	l.ip(l.exit, "route", "add", "unreachable", "10.42.0.0/16")
	l.ip(l.exit, "-6", "route", "add", "unreachable", "fd00:42::/64")
}

// newTun creates a TUN device here, moves it into ns and names it name.
func (l *lab) newTun(ns, name string) *os.File {
	l.t.Helper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		l.t.Fatalf("opening /dev/net/tun: %v", err)
	}
	tmp := tmpName("t")
	ifr, err := unix.NewIfreq(tmp)
	if err != nil {
		l.t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		l.t.Fatalf("TUNSETIFF %s: %v", tmp, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		l.t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join("/dev/net/tun", tmp))
	l.must("ip", "link", "set", tmp, "netns", ns)
	l.ip(ns, "link", "set", tmp, "name", name)
	l.ip(ns, "link", "set", name, "up")
	return f
}

func (tn *tunnel) copy(dst, src *os.File) {
	defer func() { tn.done <- struct{}{} }()
	buf := make([]byte, 65536)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil && errors.Is(err, os.ErrClosed) {
			return
		}
	}
}

// down closes the pod's end: tailscale0 disappears with its routes, as
// when tailscaled dies. The exit end stays.
func (tn *tunnel) down() {
	tn.pod.Close()
	<-tn.done
}

func (tn *tunnel) close() {
	tn.pod.Close()
	tn.exit.Close()
}
