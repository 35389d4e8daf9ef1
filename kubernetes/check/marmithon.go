package check

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// tailnetRange holds every Tailscale node address (the CGNAT range).
var tailnetRange = netip.MustParsePrefix("100.64.0.0/10")

// podErrors checks the pod of an exit-node workload: no host networking; a
// native tailscale sidecar in kernel mode that names its exit node by
// address; DNS through the tunnel; the bot containers without network
// privileges, running as a UID that an init container (not the bot) locks
// to tailscale0 for IPv4 and IPv6; and a bot that is restarted while the
// tunnel is down.
func podErrors(w workload) []error {
	spec := w.pod.Spec
	var errs []error
	if spec.HostNetwork {
		errs = append(errs, fmt.Errorf("%s: hostNetwork: the bot would share the node's network and its home IP", w.name))
	}
	c := findSidecar(spec)
	if c == nil {
		return append(errs, fmt.Errorf("%s: no tailscale initContainer", w.name))
	}
	errs = append(errs, sidecarErrors(w, c)...)
	errs = append(errs, dnsErrors(w)...)
	if len(spec.Containers) == 0 {
		errs = append(errs, fmt.Errorf("%s: no main container", w.name))
	}
	for i := range spec.Containers {
		errs = append(errs, botErrors(w, &spec.Containers[i], c)...)
	}
	return errs
}

func sidecarErrors(w workload, c *corev1.Container) []error {
	var errs []error
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		errs = append(errs, fmt.Errorf("%s: initContainer %s is not a native sidecar (restartPolicy: Always)", w.name, c.Name))
	}
	if c.StartupProbe == nil {
		errs = append(errs, fmt.Errorf("%s: sidecar %s has no startupProbe: the bot could start before the tunnel is up", w.name, c.Name))
	}
	errs = append(errs, exitNodeArgErrors(w.name, c)...)
	if us, _ := env(c, "TS_USERSPACE"); us.Value != "false" {
		errs = append(errs, fmt.Errorf("%s: TS_USERSPACE=%q; want \"false\" (kernel mode routes all pod traffic into tailscale0)", w.name, us.Value))
	} else if !netAdmin(c) {
		errs = append(errs, fmt.Errorf("%s: sidecar %s needs capability NET_ADMIN for kernel mode", w.name, c.Name))
	}
	errs = append(errs, proxyErrors(w.name, c)...)
	errs = append(errs, authOnceErrors(w.name, c)...)
	if d, _ := env(c, "TS_ACCEPT_DNS"); d.Value != "false" {
		errs = append(errs, fmt.Errorf("%s: TS_ACCEPT_DNS=%q; want \"false\" (the pod's dnsConfig decides)", w.name, d.Value))
	}
	return errs
}

// exitNodeArgErrors checks the `tailscale up` arguments (TS_EXTRA_ARGS, with
// $(VAR) references expanded as the kubelet does).
func exitNodeArgErrors(name string, c *corev1.Container) []error {
	extra, _ := env(c, "TS_EXTRA_ARGS")
	args := expandEnv(c, extra.Value)
	f := strings.Fields(args)
	var node string
	for i, a := range f {
		switch {
		case strings.HasPrefix(a, "--exit-node="):
			node = strings.TrimPrefix(a, "--exit-node=")
		case a == "--exit-node" && i+1 < len(f):
			node = f[i+1]
		}
	}
	var errs []error
	if node == "" {
		errs = append(errs, fmt.Errorf("%s: TS_EXTRA_ARGS %q has no --exit-node=<node>", name, args))
	} else if ip, err := netip.ParseAddr(node); node != Unset && (err != nil || !tailnetRange.Contains(ip)) {
		errs = append(errs, fmt.Errorf("%s: --exit-node=%s: name the exit node by its tailnet IPv4 address (100.64.0.0/10); "+
			"tailscale cannot resolve a host name while it is starting up", name, node))
	}
	return errs
}

// proxyEnv are the containerboot variables that make tailscaled listen as
// a proxy: its connections are root's, outside the bot's UID lock, and
// leave from home whenever they do not take the tunnel.
var proxyEnv = []string{"TS_SOCKS5_SERVER", "TS_OUTBOUND_HTTP_PROXY_LISTEN"}

func proxyErrors(name string, c *corev1.Container) []error {
	var errs []error
	for _, v := range proxyEnv {
		if e, ok := env(c, v); ok && (e.Value != "" || e.ValueFrom != nil) {
			errs = append(errs, fmt.Errorf("%s: %s=%s: tailscaled would proxy the bot's connections as root, past the UID lock", name, v, e.Value))
		}
	}
	return errs
}

// authOnceErrors: with TS_AUTH_ONCE, containerboot runs `tailscale up`
// (with TS_EXTRA_ARGS) only at the first login and `tailscale set` (without
// them) on every later start, so a changed exit node is never applied
// unless something sets it again.
func authOnceErrors(name string, c *corev1.Container) []error {
	if e, _ := env(c, "TS_AUTH_ONCE"); e.Value != "true" {
		return nil
	}
	p := c.StartupProbe
	if p != nil && p.Exec != nil && strings.Contains(strings.Join(p.Exec.Command, " "), "set --exit-node=") {
		return nil
	}
	return []error{fmt.Errorf("%s: TS_AUTH_ONCE=true and no `tailscale set --exit-node=` in the sidecar's startupProbe: "+
		"later starts run `tailscale set` without TS_EXTRA_ARGS, so a changed exit node would never be applied", name)}
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandEnv expands $(VAR) from the container's literal env values.
func expandEnv(c *corev1.Container, s string) string {
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		if e, ok := env(c, envRef.FindStringSubmatch(m)[1]); ok && e.ValueFrom == nil {
			return e.Value
		}
		return m
	})
}

// dnsErrors checks that the pod resolves names through the tunnel: its own
// public resolvers (dnsPolicy None), not cluster DNS or the node's, whose
// queries would leave from home.
func dnsErrors(w workload) []error {
	spec := w.pod.Spec
	if spec.DNSPolicy != corev1.DNSNone || spec.DNSConfig == nil || len(spec.DNSConfig.Nameservers) == 0 {
		return []error{fmt.Errorf("%s: dnsPolicy %q: want \"None\" with public nameservers in dnsConfig, so that the bot's DNS goes through the tunnel", w.name, spec.DNSPolicy)}
	}
	var errs []error
	for _, ns := range spec.DNSConfig.Nameservers {
		ip, err := netip.ParseAddr(ns)
		if err != nil || privateCIDR(netip.PrefixFrom(ip, ip.BitLen()).String()) || tailnetRange.Contains(ip) {
			errs = append(errs, fmt.Errorf("%s: nameserver %s is not a public address: the bot's DNS would not go through the exit node", w.name, ns))
		}
	}
	return errs
}

// botErrors checks one main container against the sidecar.
func botErrors(w workload, bot, sidecar *corev1.Container) []error {
	var errs []error
	where := fmt.Sprintf("%s: container %s", w.name, bot.Name)
	sc := bot.SecurityContext
	if netAdmin(bot) || (sc != nil && sc.Capabilities != nil && slices.Contains(sc.Capabilities.Add, "NET_RAW")) {
		errs = append(errs, fmt.Errorf("%s has NET_ADMIN, NET_RAW or privileged: it could change the routes or the firewall", where))
	}
	if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		errs = append(errs, fmt.Errorf("%s must drop ALL capabilities and set allowPrivilegeEscalation: false", where))
	}
	uid := runAsUser(w.pod.Spec, bot)
	if uid == nil || *uid == 0 {
		errs = append(errs, fmt.Errorf("%s: no non-root runAsUser: the egress lock matches the bot by UID", where))
	} else {
		errs = append(errs, lockErrors(w, *uid)...)
		if s := runAsUser(w.pod.Spec, sidecar); s != nil && *s == *uid {
			errs = append(errs, fmt.Errorf("%s runs as UID %d like the sidecar: the lock would cut the tunnel itself", where, *uid))
		}
	}
	if !probesSidecar(bot, sidecar) {
		errs = append(errs, fmt.Errorf("%s: no livenessProbe on the sidecar's /healthz: the bot would keep running while the tunnel is down", where))
	}
	return errs
}

func runAsUser(spec corev1.PodSpec, c *corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if spec.SecurityContext != nil {
		return spec.SecurityContext.RunAsUser
	}
	return nil
}

// probesSidecar reports whether the bot's livenessProbe asks the sidecar's
// health endpoint (TS_LOCAL_ADDR_PORT, on a non-loopback address so the
// kubelet reaches it).
func probesSidecar(bot, sidecar *corev1.Container) bool {
	p := bot.LivenessProbe
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		return false
	}
	addr, _ := env(sidecar, "TS_LOCAL_ADDR_PORT")
	hc, _ := env(sidecar, "TS_ENABLE_HEALTH_CHECK")
	ap, err := netip.ParseAddrPort(addr.Value)
	if err != nil || hc.Value != "true" || ap.Addr().IsLoopback() {
		return false
	}
	return p.HTTPGet.Port.IntValue() == int(ap.Port())
}

// lockErrors checks that a plain init container (not a sidecar, not the
// bot) installs, for both iptables and ip6tables, an OUTPUT rule rejecting
// every packet of uid, and accepts that uid only on tailscale0 and lo.
func lockErrors(w workload, uid int64) []error {
	u := strconv.FormatInt(uid, 10)
	for _, c := range w.pod.Spec.InitContainers {
		if c.RestartPolicy != nil || !netAdmin(&c) {
			continue
		}
		script := strings.Join(append(append([]string{}, c.Command...), c.Args...), " ")
		if lockedFor(script, u) {
			return lockEditErrors(w.name, c.Name, script)
		}
	}
	return []error{fmt.Errorf("%s: no init container with NET_ADMIN rejects UID %s's packets outside tailscale0 "+
		"(iptables and ip6tables: -A OUTPUT -m owner --uid-owner %s -j REJECT, accepting only -o tailscale0 and -o lo): "+
		"with the tunnel down the bot would leave from the home IP", w.name, u, u)}
}

var iptablesRule = regexp.MustCompile(`(?m)(\$t|iptables|ip6tables)\s+(?:-w\s+)?-A\s+OUTPUT\s+-m\s+owner\s+--uid-owner\s+(\d+)\s*(-o\s+\S+\s+)?-j\s+(\w+)`)

func lockedFor(script, uid string) bool {
	tools := map[string]bool{}
	if strings.Contains(script, "for t in iptables ip6tables") {
		tools["$t"] = true
	}
	rejects := map[string]bool{}
	for _, m := range iptablesRule.FindAllStringSubmatch(script, -1) {
		tool, u, out, target := m[1], m[2], strings.TrimSpace(m[3]), m[4]
		if u != uid {
			continue
		}
		if target == "ACCEPT" && out != "-o tailscale0" && out != "-o lo" {
			return false
		}
		if (target == "REJECT" || target == "DROP") && out == "" {
			rejects[tool] = true
		}
	}
	return (rejects["iptables"] && rejects["ip6tables"]) || (tools["$t"] && rejects["$t"])
}

// lockEdit matches what the lock script must not do: anything but append
// to filter OUTPUT and mangle POSTROUTING (insert, policy, flush, delete,
// another table), and ignore a failure. Cheap and textual; kubernetes/check/podnet runs the
// script and judges it by its packets.
var lockEdit = regexp.MustCompile(`(?m)(\|\||(?:^|\s)(?:-[IPFDRXZt]|--(?:insert|policy|flush|delete|replace|table|delete-chain))\s)`)

func lockEditErrors(name, container, script string) []error {
	// The one other table the lock appends to: its second layer.
	script = strings.ReplaceAll(script, "-t mangle -A POSTROUTING ", "")
	if m := lockEdit.FindString(script); m != "" {
		return []error{fmt.Errorf("%s: init container %s: %q in the egress lock: it may only append (-A) the UID rules to filter OUTPUT, "+
			"and must fail when a rule cannot be installed", name, container, strings.TrimSpace(m))}
	}
	return nil
}
