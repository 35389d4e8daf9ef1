package check

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// cert-manager's HTTP-01 solver pods (pkg/issuer/acme/http, v1.21): created
// in the namespace of the Ingress whose certificate they answer for, with
// this label, listening on TCP 8089 (container port "http").
const (
	solverLabel = "acme.cert-manager.io/http01-solver"
	solverPort  = 8089
)

// SolverErrors checks that cert-manager's HTTP-01 solver pods can be
// reached by the ingress controller: for each Ingress that gets its
// certificate from an issuer with an HTTP-01 solver, no NetworkPolicy of
// its namespace may leave the solver's port closed to the controller's
// pods. Otherwise the challenge fails and the certificate is never issued,
// while ArgoCD reports the app Healthy.
func SolverErrors(objs []Object) []error {
	http01 := http01Issuers(objs)
	ctrl, ok := ingressController(objs)
	var errs []error
	seen := map[string]bool{}
	for _, o := range objs {
		if o.Kind != "Ingress" || seen[o.Namespace] {
			continue
		}
		var ing metav1.PartialObjectMetadata
		if json.Unmarshal(o.JSON, &ing) != nil {
			continue
		}
		a := ing.Annotations
		if !http01["ClusterIssuer/"+a["cert-manager.io/cluster-issuer"]] && !http01[o.Namespace+"/Issuer/"+a["cert-manager.io/issuer"]] {
			continue
		}
		seen[o.Namespace] = true
		if !ok {
			return []error{fmt.Errorf("%s: its certificate needs an HTTP-01 solver, and no ingress controller (pods labelled app.kubernetes.io/name=traefik) is in the tree", o)}
		}
		if np := solverDenied(objs, o.Namespace, ctrl); np != "" {
			errs = append(errs, fmt.Errorf("%s: NetworkPolicy %s/%s denies cert-manager's HTTP-01 solver pods (%s, TCP %d) to the ingress controller in namespace %s: "+
				"the certificate is never issued", o, o.Namespace, np, solverLabel, solverPort, ctrl.ns))
		}
	}
	return errs
}

// http01Issuers returns "ClusterIssuer/<name>" and "<ns>/Issuer/<name>" of
// every ACME issuer with an HTTP-01 solver.
func http01Issuers(objs []Object) map[string]bool {
	out := map[string]bool{}
	for _, o := range objs {
		if o.Kind != "ClusterIssuer" && o.Kind != "Issuer" {
			continue
		}
		var iss struct {
			Spec struct {
				ACME *struct {
					Solvers []struct {
						HTTP01 *json.RawMessage `json:"http01"`
					} `json:"solvers"`
				} `json:"acme"`
			} `json:"spec"`
		}
		if json.Unmarshal(o.JSON, &iss) != nil || iss.Spec.ACME == nil {
			continue
		}
		for _, s := range iss.Spec.ACME.Solvers {
			if s.HTTP01 != nil {
				key := "ClusterIssuer/" + o.Name
				if o.Kind == "Issuer" {
					key = o.Namespace + "/Issuer/" + o.Name
				}
				out[key] = true
			}
		}
	}
	return out
}

type podRef struct {
	ns     string
	labels labels.Set
}

func ingressController(objs []Object) (podRef, bool) {
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "DaemonSet" {
			continue
		}
		var w struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		if json.Unmarshal(o.JSON, &w) == nil && w.Spec.Template.Labels["app.kubernetes.io/name"] == "traefik" {
			return podRef{o.Namespace, w.Spec.Template.Labels}, true
		}
	}
	return podRef{}, false
}

// solverDenied returns the name of a NetworkPolicy in ns that selects the
// solver pods for ingress when none of the policies selecting them lets
// the controller in on the solver's port ("" when the solver is reachable).
func solverDenied(objs []Object, ns string, ctrl podRef) string {
	solver := labels.Set{solverLabel: "true"}
	denying := ""
	for _, o := range objs {
		var np networkingv1.NetworkPolicy
		if o.Kind != "NetworkPolicy" || o.Namespace != ns || json.Unmarshal(o.JSON, &np) != nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(solver) || !hasIngressType(&np) {
			continue
		}
		for _, r := range np.Spec.Ingress {
			if admits(r, ns, ctrl) {
				return ""
			}
		}
		denying = np.Name
	}
	return denying
}

func hasIngressType(np *networkingv1.NetworkPolicy) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return true
	}
	for _, t := range np.Spec.PolicyTypes {
		if t == networkingv1.PolicyTypeIngress {
			return true
		}
	}
	return false
}

// admits reports whether an ingress rule of a policy in ns lets the
// controller's pods reach the solver's port.
func admits(r networkingv1.NetworkPolicyIngressRule, ns string, ctrl podRef) bool {
	if !admitsPort(r.Ports) {
		return false
	}
	if len(r.From) == 0 {
		return true
	}
	for _, p := range r.From {
		if p.IPBlock != nil {
			continue
		}
		if p.NamespaceSelector == nil && ctrl.ns != ns {
			continue
		}
		if p.NamespaceSelector != nil && !selects(p.NamespaceSelector, labels.Set{"kubernetes.io/metadata.name": ctrl.ns}) {
			continue
		}
		if p.PodSelector == nil || selects(p.PodSelector, ctrl.labels) {
			return true
		}
	}
	return false
}

func selects(s *metav1.LabelSelector, l labels.Set) bool {
	sel, err := metav1.LabelSelectorAsSelector(s)
	return err == nil && sel.Matches(l)
}

func admitsPort(ports []networkingv1.NetworkPolicyPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		switch {
		case p.Port == nil, p.Port.StrVal == "http":
			return true
		case p.Port.StrVal == "":
			hi := p.Port.IntVal
			if p.EndPort != nil {
				hi = *p.EndPort
			}
			if p.Port.IntVal <= solverPort && solverPort <= hi {
				return true
			}
		}
	}
	return false
}
