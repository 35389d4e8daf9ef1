package modules

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The firewall test's addresses, only inside its two namespaces: the node,
// and a peer holding an address of the pod network, of the home LAN and of
// neither (a WAN).
const (
	fwNode = "10.0.0.21"
	fwPod  = "10.42.3.4"
	fwLAN  = "10.0.0.30"
	fwWAN  = "10.99.0.2"
)

// nixosFirewall is the NixOS iptables firewall's start script
// (nixos/modules/services/networking/firewall-iptables.nix), reduced to the
// chains and rules a k3s node's defaults produce, in its order: lo trusted,
// established traffic, allowedTCPPorts, then extraCommands, then refuse.
func nixosFirewall(n nodeNetwork) string {
	var b strings.Builder
	b.WriteString("iptables -N nixos-fw-accept\niptables -A nixos-fw-accept -j ACCEPT\n")
	b.WriteString("iptables -N nixos-fw-refuse\niptables -A nixos-fw-refuse -j DROP\n")
	b.WriteString("iptables -N nixos-fw\niptables -A nixos-fw -i lo -j nixos-fw-accept\n")
	b.WriteString("iptables -A nixos-fw -m conntrack --ctstate ESTABLISHED,RELATED -j nixos-fw-accept\n")
	for _, p := range n.AllowedTCPPorts {
		fmt.Fprintf(&b, "iptables -A nixos-fw -p tcp --dport %d -j nixos-fw-accept\n", p)
	}
	b.WriteString(n.ExtraCommands)
	b.WriteString("\niptables -A nixos-fw -j nixos-fw-refuse\niptables -A INPUT -j nixos-fw\n")
	return b.String()
}

// firewallReaches runs the host's firewall in a network namespace and
// reports, for each source and port, whether a TCP connection from it is
// accepted.
func firewallReaches(t *testing.T, n nodeNetwork, ports []int) map[string]bool {
	t.Helper()
	ns := fmt.Sprintf("fw%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	node, peer := ns+"n", ns+"p"
	sh := func(argv ...string) {
		t.Helper()
		if out, err := run(argv); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	for _, x := range []string{node, peer} {
		sh("ip", "netns", "add", x)
		t.Cleanup(func() { run([]string{"ip", "netns", "del", x}) })
		sh("ip", "-n", x, "link", "set", "lo", "up")
	}
	va, vb := fmt.Sprintf("fw%x.a", os.Getpid()%0xfffff), fmt.Sprintf("fw%x.b", os.Getpid()%0xfffff)
	sh("ip", "link", "add", va, "netns", node, "type", "veth", "peer", "name", vb, "netns", peer)
	sh("ip", "-n", node, "addr", "add", fwNode+"/24", "dev", va)
	sh("ip", "-n", node, "link", "set", va, "up")
	sh("ip", "-n", node, "route", "add", "10.42.0.0/16", "dev", va)
	sh("ip", "-n", node, "route", "add", "10.99.0.0/24", "dev", va)
	for _, a := range []string{fwLAN + "/24", fwPod + "/16", fwWAN + "/24"} {
		sh("ip", "-n", peer, "addr", "add", a, "dev", vb)
	}
	sh("ip", "-n", peer, "link", "set", vb, "up")
	bin := t.TempDir()
	for _, tool := range []string{"iptables", "ip6tables"} {
		if err := os.Symlink("/usr/sbin/"+tool+"-legacy", filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", node, "/bin/sh", "-e", "-c", nixosFirewall(n))
	cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/sbin:/usr/bin:/sbin:/bin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the firewall's start script fails: %v\n%s", err, out)
	}
	listen(t, node, ports)
	return probe(t, peer, ports)
}

// listen listens on ports in ns (the kernel completes handshakes without
// an accept) until the test ends.
func listen(t *testing.T, ns string, ports []int) {
	t.Helper()
	prog := `import socket, sys
ss = []
for p in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p))); s.listen(64); ss.append(s)
print("ready", flush=True); sys.stdin.read()`
	args := []string{"netns", "exec", ns, "python3", "-c", prog}
	for _, p := range ports {
		args = append(args, fmt.Sprint(p))
	}
	cmd := exec.Command("ip", args...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("python3 (install python3): %v", err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("listener in %s: %q %v", ns, line, err)
	}
}

// probe connects from each source address to each port, all at once, and
// returns "<source>:<port>" -> connected.
func probe(t *testing.T, ns string, ports []int) map[string]bool {
	t.Helper()
	prog := `import socket, sys, threading
res = {}
def try_(src, port):
    s = socket.socket(); s.settimeout(1.0); s.bind((src, 0))
    try:
        s.connect((sys.argv[1], port)); res[src + ":" + str(port)] = "ok"
    except OSError as e:
        res[src + ":" + str(port)] = "fail"
    s.close()
ts = [threading.Thread(target=try_, args=(src, int(p))) for src in sys.argv[2].split(",") for p in sys.argv[3:]]
[x.start() for x in ts]; [x.join() for x in ts]
print("\n".join(k + " " + v for k, v in sorted(res.items())))`
	argv := []string{"ip", "netns", "exec", ns, "python3", "-c", prog, fwNode, strings.Join([]string{fwPod, fwLAN, fwWAN}, ",")}
	for _, p := range ports {
		argv = append(argv, fmt.Sprint(p))
	}
	out, err := run(argv)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		got[k] = v == "ok"
	}
	return got
}

// TestK3sNodeFirewallPackets runs each host's evaluated firewall (NixOS's
// chain order, the fleet's allowedTCPPorts and extraCommands) with
// iptables-legacy in a network namespace and connects to the host-network
// pods' ports from the pod network, the LAN and elsewhere.
func TestK3sNodeFirewallPackets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (network namespaces, iptables)")
	}
	f := newFleet(t)
	for _, tc := range []struct {
		host string
		k3s  bool
	}{{"raccoon00", true}, {"opi01", true}, {"eagle", false}} {
		t.Run(tc.host, func(t *testing.T) {
			var n nodeNetwork
			f.mustEval(t, fmt.Sprintf("nodeNetwork %q", tc.host), &n)
			got := firewallReaches(t, n, hostNetworkPorts)
			for _, port := range hostNetworkPorts {
				for src, want := range map[string]bool{fwPod: tc.k3s, fwLAN: tc.k3s, fwWAN: false} {
					if k := fmt.Sprintf("%s:%d", src, port); got[k] != want {
						t.Errorf("%s: TCP %d from %s accepted = %v; want %v", tc.host, port, src, got[k], want)
					}
				}
			}
		})
	}
}
