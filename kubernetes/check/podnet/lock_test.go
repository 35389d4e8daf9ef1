package podnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verdict is what one run of the pod in the lab showed.
type verdict struct {
	// started is false when a script failed: the pod never runs (the
	// init container failed, or the sidecar never passes its
	// startupProbe), which is failing closed.
	started bool
	why     string
	// leaks are bot packets that left from home (the node forwarded
	// them) or reached the internet other than through the tunnel.
	leaks []string
	// broken is what should work and did not: the bot's traffic through
	// the tunnel, the kubelet's probe.
	broken []string
}

// judge runs the pod's scripts in a fresh lab and sends the bot's traffic
// in three states: only the lock installed (the sidecar not started, or
// restarting), the tunnel up, and the tunnel gone (tailscaled died). With
// noIptables, iptables fails as on a node without the legacy iptables
// modules.
func judge(t *testing.T, p pod, noIptables bool) verdict {
	t.Helper()
	l := newLab(t)
	l.tools(noIptables)
	l.control()
	var v verdict
	if err := l.script(p.lock, nil); err != nil {
		v.why = fmt.Sprintf("egress-lock failed, the pod never starts: %v", err)
		return v
	}
	v.observe(l, "only the lock (sidecar not running)", l.botDials(p, nil), "")
	err := l.script(p.sidecar, map[string]string{"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443"})
	if err != nil {
		v.why = fmt.Sprintf("the sidecar's script failed, the bot never starts: %v", err)
		return v
	}
	v.started = true
	l.tailscaled(p)
	v.observe(l, "tunnel up", l.botDials(p, p.sidecar.env), "tunnel")
	probe := l.helper(l.node, "get", nil, "http://"+podIP4+":"+port(p.sidecar.env["TS_LOCAL_ADDR_PORT"])+"/healthz")
	if !strings.Contains(probe, " ok") {
		v.broken = append(v.broken, "the node cannot reach the sidecar's health port (the kubelet's probe): "+strings.TrimSpace(probe))
	}
	l.tun.down()
	v.observe(l, "tunnel down (tailscale0 gone)", l.botDials(p, p.sidecar.env), "")
	return v
}

// observe records a phase's dial results. want is "tunnel" when every
// direct dial must succeed through the tunnel, "" when nothing may succeed.
func (v *verdict) observe(l *lab, phase string, lines []string, want string) {
	time.Sleep(50 * time.Millisecond) // let copies of packets (TEE) reach the node
	if n := l.homePackets(); n > 0 {
		v.leaks = append(v.leaks, fmt.Sprintf("%s: the node forwarded %d of the bot's packets to the internet (home IP)", phase, n))
	}
	for _, line := range lines {
		f := strings.Fields(line)
		target, ok, peer := f[0], f[1] == "ok", f[2]
		tunnelPeer := peer == tsIP4 || peer == tsIP6
		switch {
		case ok && !tunnelPeer:
			v.leaks = append(v.leaks, fmt.Sprintf("%s: %s answered, seen from %s (not the tunnel)", phase, target, peer))
		case ok && want == "":
			v.leaks = append(v.leaks, fmt.Sprintf("%s: %s answered through the tunnel, which should be down", phase, target))
		case !ok && want == "tunnel" && !strings.HasPrefix(target, "proxy:"):
			v.broken = append(v.broken, fmt.Sprintf("%s: %s failed: %s", phase, target, peer))
		}
	}
}

// botDials dials, as the bot's UID in the pod, the internet server on the
// ports the bot or an attacker would use (IRC, HTTPS, DNS over UDP and
// TCP), over IPv4 and IPv6, and through every proxy listener env asks
// tailscaled for.
func (l *lab) botDials(p pod, env map[string]string) []string {
	var targets []string
	for _, n := range []struct{ tcp, udp, host string }{{"tcp4", "udp4", netIP4}, {"tcp6", "udp6", "[" + netIP6 + "]"}} {
		for _, port := range []string{"6697", "443", "53"} {
			targets = append(targets, n.tcp+":"+n.host+":"+port)
		}
		targets = append(targets, n.udp+":"+n.host+":53")
	}
	for _, v := range []string{"TS_SOCKS5_SERVER", "TS_OUTBOUND_HTTP_PROXY_LISTEN"} {
		if a := env[v]; a != "" {
			targets = append(targets, "proxy:"+a+"/"+netIP4+":6697")
		}
	}
	out := l.helper(l.pod, "dial", []string{fmt.Sprintf("%s=%d", uidEnv, p.botUID)}, targets...)
	return strings.Split(strings.TrimSpace(out), "\n")
}

// control checks the lab itself before any script runs: root in the pod
// reaches the internet from home. Without it a lock could look tight only
// because nothing worked.
func (l *lab) control() {
	l.t.Helper()
	out := l.helper(l.pod, "dial", nil, "tcp4:"+netIP4+":6697", "tcp6:["+netIP6+"]:6697")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); f[1] != "ok" || (f[2] != podIP4 && f[2] != podIP6) {
			l.t.Fatalf("lab: the pod does not reach the internet from home before the lock: %s", line)
		}
	}
	l.homePackets()
}

// tools makes the PATH the scripts see: iptables and ip6tables are the
// legacy ones, as in the tailscale image; with broken, they fail as on a
// node without the legacy modules; containerboot does nothing.
func (l *lab) tools(broken bool) {
	l.t.Helper()
	bin := filepath.Join(l.dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		l.t.Fatal(err)
	}
	fail := "#!/bin/sh\necho \"iptables: can't initialize iptables table 'filter': Table does not exist (do you need to insmod?)\" >&2\nexit 3\n"
	for _, name := range []string{"iptables", "ip6tables"} {
		var err error
		if broken {
			err = os.WriteFile(filepath.Join(bin, name), []byte(fail), 0o755)
		} else {
			err = os.Symlink("/usr/sbin/"+name+"-legacy", filepath.Join(bin, name))
		}
		if err != nil {
			l.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "containerboot"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		l.t.Fatal(err)
	}
}

// script runs a container's script in the pod as root with the
// container's capabilities and environment.
func (l *lab) script(c container, extra map[string]string) error {
	s := strings.Replace(c.script, containerboot, "exec '"+filepath.Join(l.dir, "bin/containerboot")+"'", 1)
	env := append(c.environ(extra), "PATH="+filepath.Join(l.dir, "bin")+":/usr/sbin:/usr/bin:/sbin:/bin")
	argv := append(append([]string{"ip", "netns", "exec", l.pod}, setprivArgs(c.caps)...), "/bin/sh", "-c", s)
	_, err := run(env, argv...)
	return err
}

// tailscaled does, in the pod, what tailscaled does in kernel mode once
// the exit node is selected (wgengine/router/osrouter/router_linux.go,
// tailscale 1.102): tailscale0 up with the node's addresses, rules 5210 to
// 5270 (packets with the bypass mark to main, everything else to table 52),
// a default route into tailscale0 in table 52, for IPv4 and IPv6, and its
// connmark rules (its filter chains touch only INPUT and FORWARD). With
// --exit-node-allow-lan-access=false it adds no throw routes; with true it
// would add throw routes for the LAN, which only sends more to main. Then
// containerboot's health endpoint and any proxy listener the env asks for.
func (l *lab) tailscaled(p pod) {
	l.t.Helper()
	l.openTunnel()
	for _, f := range []string{"-4", "-6"} {
		l.ip(l.pod, f, "rule", "add", "pref", "5210", "fwmark", "0x80000/0xff0000", "table", "main")
		l.ip(l.pod, f, "rule", "add", "pref", "5230", "fwmark", "0x80000/0xff0000", "table", "default")
		l.ip(l.pod, f, "rule", "add", "pref", "5250", "fwmark", "0x80000/0xff0000", "type", "unreachable")
		l.ip(l.pod, f, "rule", "add", "pref", "5270", "table", "52")
		l.ip(l.pod, f, "route", "add", "default", "dev", "tailscale0", "table", "52")
	}
	// util/linuxfw: the connmark rules that keep the bypass mark on the
	// replies of tailscaled's own connections (inserted first in mangle).
	for _, tool := range []string{"iptables-legacy", "ip6tables-legacy"} {
		l.in(l.pod, tool, "-w", "-t", "mangle", "-I", "PREROUTING", "1", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
			"-m", "connmark", "!", "--mark", "0x0/0xff0000", "-j", "CONNMARK", "--restore-mark", "--nfmask", "0xff0000", "--ctmask", "0xff0000")
		l.in(l.pod, tool, "-w", "-t", "mangle", "-I", "OUTPUT", "1", "-m", "conntrack", "--ctstate", "NEW",
			"-m", "mark", "!", "--mark", "0x0/0xff0000", "-j", "CONNMARK", "--save-mark", "--nfmask", "0xff0000", "--ctmask", "0xff0000")
	}
	l.start(l.pod, "sidecar", p.sidecar.environ(nil))
}

func port(addrPort string) string {
	i := strings.LastIndex(addrPort, ":")
	return addrPort[i+1:]
}

// TestMarmithonLock runs the tree's scripts: the bot reaches the internet
// only through the tunnel, nothing at all with the tunnel down, the node
// reaches the probe port; without legacy iptables the pod does not start.
func TestMarmithonLock(t *testing.T) {
	p := renderedPod(t)
	t.Run("tree", func(t *testing.T) {
		t.Parallel()
		v := judge(t, p, false)
		if !v.started || len(v.leaks) > 0 || len(v.broken) > 0 {
			t.Errorf("judge(tree) = started %v (%s), leaks %q, broken %q; want started, no leak, nothing broken", v.started, v.why, v.leaks, v.broken)
		}
	})
	t.Run("no legacy iptables on the node", func(t *testing.T) {
		t.Parallel()
		if v := judge(t, p, true); v.started || len(v.leaks) > 0 {
			t.Errorf("judge(tree, no iptables) = started %v, leaks %q; want the pod not to start", v.started, v.leaks)
		}
	})
}

// edit changes the rendered pod; it fails the test if the text it changes
// is not there (the mutation would test nothing).
type edit struct {
	name       string
	change     func(t *testing.T, p *pod)
	noIptables bool
	// want: "leak", "broken", or "none" for an edit that changes nothing
	// about where packets go (the test must not flag it).
	want string
}

func replace(old, new string, in func(*pod) *string) func(*testing.T, *pod) {
	return func(t *testing.T, p *pod) {
		s := in(p)
		if !strings.Contains(*s, old) {
			t.Fatalf("mutation: %q not in script:\n%s", old, *s)
		}
		*s = strings.ReplaceAll(*s, old, new)
	}
}

func lockScript(p *pod) *string    { return &p.lock.script }
func sidecarScript(p *pod) *string { return &p.sidecar.script }

func setEnv(k, v string) func(*testing.T, *pod) {
	return func(t *testing.T, p *pod) { p.sidecar.env[k] = v }
}

const lockStart = "set -eu\n"

// The lock's two layers: filter OUTPUT (-o is the device of the packet's
// first route) and mangle POSTROUTING (the device it really leaves by).
const (
	mangleLayer = "$t -w -t mangle -A POSTROUTING -m owner --uid-owner 65532 -j DROP\n"
	markBot     = "iptables -w -t mangle -A OUTPUT -m owner --uid-owner 65532 -j MARK --set-mark 0x80000/0xff0000\n"
)

func after(line string) func(*testing.T, *pod) {
	return replace("done\n", "done\n"+line, lockScript)
}

func all(fs ...func(*testing.T, *pod)) func(*testing.T, *pod) {
	return func(t *testing.T, p *pod) {
		for _, f := range fs {
			f(t, p)
		}
	}
}

var edits = []edit{
	// The K6 edit in each layer; in one layer only, the other catches it.
	{name: "K6: ACCEPT the bot's UID before the lock, in both layers", want: "leak",
		change: replace(lockStart, lockStart+"iptables -I OUTPUT 1 -m owner --uid-owner 65532 -j ACCEPT\n"+
			"iptables -t mangle -I POSTROUTING 1 -m owner --uid-owner 65532 -j ACCEPT\n", lockScript)},
	{name: "K6: ACCEPT the bot's UID before the lock, filter only", want: "none",
		change: replace(lockStart, lockStart+"iptables -I OUTPUT 1 -m owner --uid-owner 65532 -j ACCEPT\n", lockScript)},
	{name: "flush both layers", want: "leak", change: all(after("iptables -w -F OUTPUT\n"), after("iptables -w -t mangle -F POSTROUTING\n"))},
	{name: "flush both layers of ip6tables only", want: "leak", change: all(after("ip6tables -w -F OUTPUT\n"), after("ip6tables -w -t mangle -F POSTROUTING\n"))},
	{name: "flush filter OUTPUT only", want: "none", change: after("iptables -w -F OUTPUT\n")},
	{name: "lock IPv4 only", want: "leak", change: replace("for t in iptables ip6tables", "for t in iptables", lockScript)},
	{name: "mangle table: TEE copies the bot's packets to the node", want: "leak",
		change: after("iptables -w -t mangle -A OUTPUT -m owner --uid-owner 65532 -j TEE --gateway " + nodeIP4 + "\n")},
	// A mark set in mangle OUTPUT reroutes the bot's packets to eth0 after
	// filter let them through for tailscale0: without the POSTROUTING
	// layer they leave from home; with it they are dropped (the bot loses
	// IPv4, closed).
	{name: "mangle table: tailscaled's bypass mark on the bot's packets, filter layer only", want: "leak",
		change: all(replace("  "+mangleLayer, "", lockScript), after(markBot))},
	{name: "mangle table: tailscaled's bypass mark on the bot's packets", want: "broken", change: after(markBot)},
	{name: "|| true, on a node without legacy iptables", want: "leak", noIptables: true,
		change: func(t *testing.T, p *pod) {
			for _, target := range []string{"ACCEPT", "REJECT", "RETURN", "DROP"} {
				replace(" -j "+target+"\n", " -j "+target+" || true\n", lockScript)(t, p)
			}
		}},
	{name: "TS_SOCKS5_SERVER: tailscaled's proxy on lo", want: "leak", change: setEnv("TS_SOCKS5_SERVER", "127.0.0.1:1055")},
	{name: "TS_OUTBOUND_HTTP_PROXY_LISTEN: tailscaled's proxy on lo", want: "leak", change: setEnv("TS_OUTBOUND_HTTP_PROXY_LISTEN", "127.0.0.1:1056")},
	{name: "K2: no exception for the pod's own subnet", want: "broken",
		change: replace("lookup main suppress_prefixlength 0", "lookup 52", sidecarScript)},
	{name: "everything to the main table", want: "broken",
		change: replace("lookup main suppress_prefixlength 0", "lookup main", sidecarScript)},
	// Edits that change nothing about the packets: the OUTPUT policy is
	// ACCEPT already, and an ACCEPT in raw only ends the raw table.
	{name: "-P OUTPUT ACCEPT (already the policy)", want: "none",
		change: replace("done\n", "done\niptables -w -P OUTPUT ACCEPT\n", lockScript)},
	{name: "raw table: ACCEPT the bot's UID", want: "none",
		change: replace(lockStart, lockStart+"iptables -w -t raw -I OUTPUT -m owner --uid-owner 65532 -j ACCEPT\n", lockScript)},
}

// TestMarmithonLockMutations applies each edit to the rendered scripts and
// expects the packets to show it.
func TestMarmithonLockMutations(t *testing.T) {
	base := renderedPod(t)
	for _, e := range edits {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			p := base
			p.sidecar.env = maps(base.sidecar.env)
			e.change(t, &p)
			v := judge(t, p, e.noIptables)
			got := "none"
			switch {
			case len(v.leaks) > 0:
				got = "leak"
			case len(v.broken) > 0:
				got = "broken"
			case !v.started:
				got = "not started: " + v.why
			}
			if got != e.want {
				t.Errorf("after %q: %s (leaks %q, broken %q); want %s", e.name, got, v.leaks, v.broken, e.want)
				return
			}
			t.Logf("after %q: %s: %q %q", e.name, got, v.leaks, v.broken)
		})
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
