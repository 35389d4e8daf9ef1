package check

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// IRCPorts are the ports an IRC connection uses: no NetworkPolicy rule may
// let them reach the internet, so IRC can only leave through the tunnel.
var IRCPorts = []int32{6667, 6697}

// workload is a pod template and where it lives.
type workload struct {
	namespace string
	name      string
	pod       corev1.PodTemplateSpec
}

// ExitNodeEgress checks that the workload whose pods carry the label
// app.kubernetes.io/name=app reaches the internet only through a Tailscale
// exit node and fails closed on every port: see marmithon.go for the pod's
// invariants; this adds the auth key, the state Secret and its RBAC, and a
// NetworkPolicy that denies other egress and lets no IRC port out.
func ExitNodeEgress(objs []Object, app string) []error {
	w, err := findWorkload(objs, app)
	if err != nil {
		return []error{err}
	}
	errs := podErrors(w)
	if sidecar := findSidecar(w.pod.Spec); sidecar != nil {
		errs = append(errs, authKeyErrors(objs, w, sidecar)...)
		errs = append(errs, stateSecretErrors(objs, w, sidecar)...)
	}
	return append(errs, networkPolicyErrors(objs, w)...)
}

func findWorkload(objs []Object, app string) (workload, error) {
	var found []workload
	for _, o := range objs {
		var w workload
		switch o.Kind {
		case "Deployment", "StatefulSet", "DaemonSet":
		default:
			continue
		}
		v, err := Decode(o)
		if err != nil {
			return w, err
		}
		switch t := v.(type) {
		case *appsv1.Deployment:
			w = workload{t.Namespace, t.Name, t.Spec.Template}
		case *appsv1.StatefulSet:
			w = workload{t.Namespace, t.Name, t.Spec.Template}
		case *appsv1.DaemonSet:
			w = workload{t.Namespace, t.Name, t.Spec.Template}
		}
		if w.pod.Labels["app.kubernetes.io/name"] == app {
			found = append(found, w)
		}
	}
	if len(found) != 1 {
		return workload{}, fmt.Errorf("want one workload with pods labelled app.kubernetes.io/name=%s, found %d", app, len(found))
	}
	return found[0], nil
}

// findSidecar returns the native sidecar running the tailscale image (or,
// when none is native, the first tailscale init container, so that the
// checks can say what is wrong with it).
func findSidecar(spec corev1.PodSpec) *corev1.Container {
	var first *corev1.Container
	for i, c := range spec.InitContainers {
		if !strings.Contains(c.Image, "tailscale/tailscale") {
			continue
		}
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return &spec.InitContainers[i]
		}
		if first == nil {
			first = &spec.InitContainers[i]
		}
	}
	return first
}

func env(c *corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func netAdmin(c *corev1.Container) bool {
	sc := c.SecurityContext
	if sc == nil {
		return false
	}
	if sc.Privileged != nil && *sc.Privileged {
		return true
	}
	return sc.Capabilities != nil && slices.Contains(sc.Capabilities.Add, "NET_ADMIN")
}

func authKeyErrors(objs []Object, w workload, c *corev1.Container) []error {
	e, ok := env(c, "TS_AUTHKEY")
	if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		return []error{fmt.Errorf("%s: TS_AUTHKEY must come from a Secret (secretKeyRef)", w.name)}
	}
	want := e.ValueFrom.SecretKeyRef.Name
	for _, o := range objs {
		if o.Kind == "ExternalSecret" && o.Namespace == w.namespace && producedSecret(o) == want {
			return nil
		}
	}
	return []error{fmt.Errorf("%s: no ExternalSecret writes Secret %s (TS_AUTHKEY)", w.name, want)}
}

func stateSecretErrors(objs []Object, w workload, c *corev1.Container) []error {
	e, _ := env(c, "TS_KUBE_SECRET")
	if e.Value == "" {
		return []error{fmt.Errorf("%s: TS_KUBE_SECRET is not set", w.name)}
	}
	sa := w.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	roles, err := rolesBoundTo(objs, w.namespace, sa)
	if err != nil {
		return []error{err}
	}
	for _, r := range roles {
		if grants(r, e.Value, "get", "update", "patch") {
			return keptSecretErrors(objs, w.namespace, e.Value)
		}
	}
	errs := []error{fmt.Errorf("%s: no Role bound to ServiceAccount %s allows get, update, patch on Secret %s", w.name, sa, e.Value)}
	return append(errs, keptSecretErrors(objs, w.namespace, e.Value)...)
}

// keptSecretErrors checks that the state Secret is declared in git and that
// ArgoCD neither prunes it nor deletes it with the Application: the auth key
// is single-use, so losing the Secret loses the node's identity.
func keptSecretErrors(objs []Object, ns, name string) []error {
	for _, o := range objs {
		if o.Kind != "Secret" || o.Namespace != ns || o.Name != name {
			continue
		}
		var errs []error
		for _, opt := range []string{"Prune=false", "Delete=false"} {
			if !hasSyncOption(o, opt) {
				errs = append(errs, fmt.Errorf("Secret %s/%s (tailscale state): sync-options lack %s; the node identity would be lost", ns, name, opt))
			}
		}
		return errs
	}
	return []error{fmt.Errorf("Secret %s/%s (tailscale state) is not declared in git", ns, name)}
}

func rolesBoundTo(objs []Object, ns, sa string) ([]*rbacv1.Role, error) {
	roles := make(map[string]*rbacv1.Role)
	var bound []string
	for _, o := range objs {
		if o.Namespace != ns || (o.Kind != "Role" && o.Kind != "RoleBinding") {
			continue
		}
		v, err := Decode(o)
		if err != nil {
			return nil, err
		}
		switch t := v.(type) {
		case *rbacv1.Role:
			roles[t.Name] = t
		case *rbacv1.RoleBinding:
			if t.RoleRef.Kind == "Role" && bindsServiceAccount(t, ns, sa) {
				bound = append(bound, t.RoleRef.Name)
			}
		}
	}
	var out []*rbacv1.Role
	for _, name := range bound {
		if r, ok := roles[name]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func bindsServiceAccount(b *rbacv1.RoleBinding, ns, sa string) bool {
	for _, s := range b.Subjects {
		if s.Kind == "ServiceAccount" && s.Name == sa && (s.Namespace == "" || s.Namespace == ns) {
			return true
		}
	}
	return false
}

func grants(r *rbacv1.Role, secret string, verbs ...string) bool {
	for _, v := range verbs {
		if !slices.ContainsFunc(r.Rules, func(p rbacv1.PolicyRule) bool {
			return slices.Contains(p.APIGroups, "") && slices.Contains(p.Resources, "secrets") &&
				(len(p.ResourceNames) == 0 || slices.Contains(p.ResourceNames, secret)) &&
				(slices.Contains(p.Verbs, v) || slices.Contains(p.Verbs, "*"))
		}) {
			return false
		}
	}
	return true
}

func networkPolicyErrors(objs []Object, w workload) []error {
	var errs []error
	denies := false
	for _, o := range objs {
		if o.Kind != "NetworkPolicy" || o.Namespace != w.namespace {
			continue
		}
		v, err := Decode(o)
		if err != nil {
			return append(errs, err)
		}
		np := v.(*networkingv1.NetworkPolicy)
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			return append(errs, fmt.Errorf("%s: %w", o, err))
		}
		if !sel.Matches(labels.Set(w.pod.Labels)) || !hasEgress(np) {
			continue
		}
		denies = true
		for i, r := range np.Spec.Egress {
			if err := leakyRule(r); err != nil {
				errs = append(errs, fmt.Errorf("NetworkPolicy %s egress rule %d: %w", np.Name, i, err))
			}
		}
	}
	if !denies {
		errs = append(errs, fmt.Errorf("%s: no NetworkPolicy with policyTypes Egress selects its pods, so nothing denies egress outside the tunnel", w.name))
	}
	return errs
}

// hasEgress reports whether the policy restricts egress: policyTypes lists
// Egress (when policyTypes is empty, the API server defaults it to include
// Egress only if there are egress rules).
func hasEgress(np *networkingv1.NetworkPolicy) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
}

// leakyRule reports a rule that lets traffic reach the internet on every port
// or on an IRC port.
func leakyRule(r networkingv1.NetworkPolicyEgressRule) error {
	dst := internetPeer(r.To)
	if dst == "" {
		return nil
	}
	if len(r.Ports) == 0 {
		return fmt.Errorf("allows every port to %s", dst)
	}
	for _, p := range IRCPorts {
		if allowsTCP(r.Ports, p) {
			return fmt.Errorf("allows TCP %d (IRC) to %s: IRC could leave from the home IP", p, dst)
		}
	}
	return nil
}

// internetPeer returns a description of a peer in the list that can be on the
// internet ("" if none): no peers means every destination.
func internetPeer(peers []networkingv1.NetworkPolicyPeer) string {
	if len(peers) == 0 {
		return "any destination"
	}
	for _, p := range peers {
		if p.IPBlock != nil && !privateCIDR(p.IPBlock.CIDR) {
			return p.IPBlock.CIDR
		}
	}
	return ""
}

var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// privateCIDR reports whether every address of cidr is private (never routed
// to the internet). An unparsable CIDR counts as public.
func privateCIDR(cidr string) bool {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return false
	}
	for _, r := range privateRanges {
		if p.Bits() >= r.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// allowsTCP reports whether the port list lets TCP port p through. A named
// port could be anything and counts as allowing it.
func allowsTCP(ports []networkingv1.NetworkPolicyPort, p int32) bool {
	for _, np := range ports {
		if np.Protocol != nil && *np.Protocol != corev1.ProtocolTCP {
			continue
		}
		if np.Port == nil || np.Port.StrVal != "" {
			return true
		}
		hi := np.Port.IntVal
		if np.EndPort != nil {
			hi = *np.EndPort
		}
		if np.Port.IntVal <= p && p <= hi {
			return true
		}
	}
	return false
}
