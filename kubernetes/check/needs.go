package check

import (
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// needs lists what an object waits for, modelled on ArgoCD's health
// assessment: a custom resource needs its CRD to be applied at all; an
// Ingress is Healthy once its controller writes a load-balancer status; a
// LoadBalancer Service once something assigns an address; a workload once
// its pods run, which needs the Secrets they mount; a Certificate its
// issuer; an ExternalSecret its store; the store its credentials.
func (t *Tree) needs(o Object) []need {
	var out []need
	if o.Namespace != "" {
		out = append(out, need{"namespace:" + o.Namespace, true, "lives in namespace " + o.Namespace})
	}
	if !Builtin(o) && o.Kind != "CustomResourceDefinition" {
		group, _, _ := strings.Cut(o.APIVersion, "/")
		out = append(out, need{"crd:" + group + "/" + o.Kind, true, "needs the CRD of " + group + "/" + o.Kind})
	}
	switch o.Kind {
	case "Application":
		var app Application
		if json.Unmarshal(o.JSON, &app) == nil {
			out = append(out, need{"appproject:" + app.Spec.Project, true, "belongs to AppProject " + app.Spec.Project})
		}
	case "Ingress":
		var ing networkingv1.Ingress
		if json.Unmarshal(o.JSON, &ing) == nil && ing.Spec.IngressClassName != nil {
			c := *ing.Spec.IngressClassName
			out = append(out, need{"ingressclass:" + c, false, "waits for a load-balancer status from the controller of IngressClass " + c})
		}
	case "Service":
		var s corev1.Service
		if json.Unmarshal(o.JSON, &s) == nil && s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			out = append(out, need{"lb", false, "is type LoadBalancer and waits for an address from a load-balancer controller (k3s runs with --disable=servicelb)"})
		}
	case "Deployment", "StatefulSet", "DaemonSet":
		if spec, ok := podSpec(o); ok {
			for _, s := range podSecrets(spec) {
				out = append(out, need{"secret:" + o.Namespace + "/" + s, false, "runs pods that need Secret " + s})
			}
		}
	}
	return append(out, crNeeds(o)...)
}

func crNeeds(o Object) []need {
	var cr struct {
		Spec struct {
			IssuerRef struct {
				Name, Kind string
			} `json:"issuerRef"`
			SecretStoreRef struct {
				Name, Kind string
			} `json:"secretStoreRef"`
			Provider struct {
				Bitwarden *struct {
					Auth struct {
						SecretRef struct {
							Credentials struct{ Name, Namespace string } `json:"credentials"`
						} `json:"secretRef"`
					} `json:"auth"`
					CAProvider *struct{ Name, Namespace string } `json:"caProvider"`
				} `json:"bitwardensecretsmanager"`
			} `json:"provider"`
		} `json:"spec"`
	}
	_ = json.Unmarshal(o.JSON, &cr)
	var out []need
	switch o.Kind {
	case "Certificate":
		ref := cr.Spec.IssuerRef
		key := "issuer:" + o.Namespace + "/" + ref.Name
		if ref.Kind == "ClusterIssuer" {
			key = "clusterissuer:" + ref.Name
		}
		out = append(out, need{key, false, "is issued by " + ref.Kind + " " + ref.Name})
	case "ExternalSecret":
		ref := cr.Spec.SecretStoreRef
		key := "secretstore:" + o.Namespace + "/" + ref.Name
		if ref.Kind == "ClusterSecretStore" {
			key = "clustersecretstore:" + ref.Name
		}
		out = append(out, need{key, false, "reads from " + ref.Kind + " " + ref.Name})
	case "ClusterSecretStore", "SecretStore":
		if bw := cr.Spec.Provider.Bitwarden; bw != nil {
			c := bw.Auth.SecretRef.Credentials
			out = append(out, need{"secret:" + c.Namespace + "/" + c.Name, false, "authenticates with Secret " + c.Namespace + "/" + c.Name})
			if p := bw.CAProvider; p != nil {
				out = append(out, need{"secret:" + p.Namespace + "/" + p.Name, false, "trusts the CA in Secret " + p.Namespace + "/" + p.Name})
			}
		}
	}
	return out
}

func podSpec(o Object) (corev1.PodSpec, bool) {
	var w struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(o.JSON, &w); err != nil {
		return corev1.PodSpec{}, false
	}
	return w.Spec.Template.Spec, true
}

// podSecrets lists the Secrets a pod cannot start without.
func podSecrets(spec corev1.PodSpec) []string {
	var out []string
	optional := func(b *bool) bool { return b != nil && *b }
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			for _, e := range c.Env {
				if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && !optional(r.SecretKeyRef.Optional) {
					out = append(out, r.SecretKeyRef.Name)
				}
			}
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil && !optional(e.SecretRef.Optional) {
					out = append(out, e.SecretRef.Name)
				}
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil && !optional(v.Secret.Optional) {
			out = append(out, v.Secret.SecretName)
		}
	}
	return out
}

// ingressStatus checks that the controller behind each IngressClass writes a
// load-balancer status into its Ingresses (ArgoCD keeps an Ingress
// Progressing until it has one): Traefik does so with
// --providers.kubernetesingress.ingressendpoint.{ip,hostname}, or copies the
// address of a published Service, which only a LoadBalancer Service has.
func (t *Tree) ingressStatus() []error {
	var errs []error
	used := map[string]bool{}
	for _, o := range t.AllObjects() {
		var ing networkingv1.Ingress
		if o.Kind == "Ingress" && json.Unmarshal(o.JSON, &ing) == nil && ing.Spec.IngressClassName != nil {
			used[*ing.Spec.IngressClassName] = true
		}
	}
	for _, a := range t.Apps {
		for _, o := range a.Objects {
			if o.Kind != "IngressClass" || !used[o.Name] {
				continue
			}
			var ic networkingv1.IngressClass
			_ = json.Unmarshal(o.JSON, &ic)
			if ic.Spec.Controller != "traefik.io/ingress-controller" {
				errs = append(errs, fmt.Errorf("%s: controller %s: the checker knows only Traefik's status publishing", o, ic.Spec.Controller))
				continue
			}
			if !publishesStatus(a.Objects) {
				errs = append(errs, fmt.Errorf("%s: Traefik publishes no load-balancer status (no --providers.kubernetesingress.ingressendpoint.ip or .hostname): "+
					"every Ingress of this class stays Progressing in ArgoCD", o))
			}
		}
	}
	return errs
}

func publishesStatus(objs []Object) bool {
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "DaemonSet" {
			continue
		}
		spec, _ := podSpec(o)
		for _, c := range spec.Containers {
			for _, arg := range c.Args {
				if strings.HasPrefix(arg, "--providers.kubernetesingress.ingressendpoint.ip=") ||
					strings.HasPrefix(arg, "--providers.kubernetesingress.ingressendpoint.hostname=") {
					return true
				}
			}
		}
	}
	return false
}

// HostPortRollouts reports DaemonSets that bind host ports and roll out with
// a surge: the new pod cannot bind the port while the old one holds it, so
// the rollout never ends.
func HostPortRollouts(objs []Object) []error {
	var errs []error
	for _, o := range objs {
		if o.Kind != "DaemonSet" {
			continue
		}
		var ds appsv1.DaemonSet
		if json.Unmarshal(o.JSON, &ds) != nil {
			continue
		}
		ru := ds.Spec.UpdateStrategy.RollingUpdate
		if !usesHostPort(ds.Spec.Template.Spec) || ru == nil || ru.MaxSurge == nil || ru.MaxSurge.String() == "0" {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: binds host ports but rolls out with maxSurge %s: the new pod can never start beside the old one", o, ru.MaxSurge.String()))
	}
	return errs
}

func usesHostPort(spec corev1.PodSpec) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				return true
			}
		}
	}
	return false
}
