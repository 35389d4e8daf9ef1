package check

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Bootstrap is what exists before the root Application syncs: applied by
// hand (docs/kubernetes.md, "Bootstrap from an empty cluster").
var Bootstrap = map[string]string{
	"secret:external-secrets/bitwarden-access-token": "the Bitwarden token, applied with sops at bootstrap",
	"namespace:argocd":            "kubectl apply -k kubernetes/base/infra/argocd at bootstrap",
	"namespace:kube-system":       "k3s",
	"appproject:default":          "ArgoCD creates it",
	"namespace:default":           "k3s",
	"crd:argoproj.io/Application": "kubectl apply -k kubernetes/base/infra/argocd at bootstrap",
	"crd:argoproj.io/AppProject":  "kubectl apply -k kubernetes/base/infra/argocd at bootstrap",
}

// createdAtRunTime maps what an Application's own pods create to that
// Application.
var createdAtRunTime = map[string]string{
	"secret:argocd/argocd-redis": "argocd", // the secret-init container of argocd-redis
	// kube-webhook-certgen, a Helm pre-install hook Job (an ArgoCD PreSync hook)
	"secret:observability/kube-prometheus-stack-admission": "observability",
}

// need is something an object waits for before it is applied (apply) or
// becomes healthy.
type need struct {
	key   string
	apply bool
	why   string
}

// provided is where something comes from.
type provided struct {
	app  *App
	what string
}

// Waves checks ArgoCD's order on a first sync: the root applies its children
// wave by wave and waits, with the Application health check, until every
// child of a wave is Healthy before the next wave. An object in wave N that
// waits on something arriving in a later wave (or never) stalls the whole
// sync. lbProvider says what gives LoadBalancer Services an address ("" for
// nothing).
func (t *Tree) Waves(lbProvider string) []error {
	prov := t.providers(lbProvider)
	var errs []error
	for _, a := range t.Apps {
		for _, o := range a.Objects {
			for _, n := range t.needs(o) {
				if err := checkNeed(a, o, n, prov); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	errs = append(errs, t.ingressStatus()...)
	return append(errs, t.healthCheck()...)
}

func checkNeed(a *App, o Object, n need, prov map[string][]provided) error {
	if _, ok := Bootstrap[n.key]; ok {
		return nil
	}
	ps := prov[n.key]
	if len(ps) == 0 {
		return fmt.Errorf("%s (Application %s, wave %d) %s, which nothing in the tree provides: it never becomes Healthy", o, a.Metadata.Name, a.Wave, n.why)
	}
	for _, p := range ps {
		switch {
		case p.app == nil || p.app == a && (!n.apply || a.HasSyncOption("SkipDryRunOnMissingResource=true") || !strings.HasPrefix(n.key, "crd:")):
			return nil
		case p.app != a && p.app.Parent == a.Parent && (p.app.Wave < a.Wave || p.app.Wave == a.Wave && !n.apply):
			return nil
		case p.app != a && p.app.Parent != a.Parent:
			return nil // another app-of-apps: not ordered by waves
		}
	}
	p := ps[0]
	if p.app == a {
		return fmt.Errorf("%s (Application %s) %s from its own Application: set SyncOption SkipDryRunOnMissingResource=true", o, a.Metadata.Name, n.why)
	}
	return fmt.Errorf("%s (Application %s, wave %d) %s, which arrives in wave %d (Application %s, %s): the sync stalls in wave %d",
		o, a.Metadata.Name, a.Wave, n.why, p.app.Wave, p.app.Metadata.Name, p.what, a.Wave)
}

func (t *Tree) providers(lbProvider string) map[string][]provided {
	prov := map[string][]provided{}
	add := func(key string, a *App, what string) { prov[key] = append(prov[key], provided{a, what}) }
	if lbProvider != "" {
		add("lb", nil, lbProvider)
	}
	for _, a := range t.Apps {
		for k, app := range createdAtRunTime {
			if a.Metadata.Name == app {
				add(k, a, "created at run time")
			}
		}
		if a.HasSyncOption("CreateNamespace=true") {
			add("namespace:"+a.Spec.Destination.Namespace, a, "CreateNamespace")
		}
		for _, o := range a.Objects {
			for _, k := range provides(o) {
				add(k, a, o.Kind+" "+o.Name)
			}
		}
	}
	return prov
}

// provides lists the keys an object satisfies.
func provides(o Object) []string {
	var spec struct {
		Spec struct {
			Group      string                `json:"group"`
			Names      struct{ Kind string } `json:"names"`
			SecretName string                `json:"secretName"`
			Target     struct{ Name string } `json:"target"`
		} `json:"spec"`
	}
	_ = json.Unmarshal(o.JSON, &spec)
	switch o.Kind {
	case "CustomResourceDefinition":
		return []string{"crd:" + spec.Spec.Group + "/" + spec.Spec.Names.Kind}
	case "Namespace":
		return []string{"namespace:" + o.Name}
	case "Secret":
		return []string{"secret:" + o.Namespace + "/" + o.Name}
	case "AppProject":
		return []string{"appproject:" + o.Name}
	case "IngressClass":
		return []string{"ingressclass:" + o.Name}
	case "ClusterIssuer":
		return []string{"clusterissuer:" + o.Name}
	case "Issuer":
		return []string{"issuer:" + o.Namespace + "/" + o.Name}
	case "ClusterSecretStore":
		return []string{"clustersecretstore:" + o.Name}
	case "Certificate":
		return []string{"secret:" + o.Namespace + "/" + spec.Spec.SecretName}
	case "ExternalSecret":
		return []string{"secret:" + o.Namespace + "/" + producedSecret(o)}
	}
	return nil
}

// producedSecret is the Secret an ExternalSecret writes.
func producedSecret(o Object) string {
	var es struct {
		Spec struct {
			Target struct{ Name string } `json:"target"`
		} `json:"spec"`
	}
	_ = json.Unmarshal(o.JSON, &es)
	if es.Spec.Target.Name != "" {
		return es.Spec.Target.Name
	}
	return o.Name
}

// healthCheck checks that argocd-cm restores the health of Applications:
// without it an Application is always Healthy and waves order nothing.
func (t *Tree) healthCheck() []error {
	cm := t.argocdCM()
	lua := cm["resource.customizations.health.argoproj.io_Application"]
	if !strings.Contains(lua, "obj.status.health") {
		return []error{fmt.Errorf("argocd-cm has no resource.customizations.health.argoproj.io_Application reading obj.status.health: " +
			"every child Application counts as Healthy at once, so sync waves order nothing")}
	}
	return t.transientHealth(cm)
}

// notReadyAtFirst are kinds whose Ready=False is normal during a first sync
// and heals without a new commit (the operator retries); ArgoCD's built-in
// health check calls it Degraded.
var notReadyAtFirst = map[string]string{
	"external-secrets.io/ClusterSecretStore": "until bitwarden-sdk-server serves",
	"external-secrets.io/ExternalSecret":     "until its store is ready",
	"cert-manager.io/ClusterIssuer":          "while step-ca is unreachable",
	"cert-manager.io/Issuer":                 "until its CA Certificate is issued",
	// Not a Ready condition: Established, set by the API server a moment
	// after the CRD is created (NamesAccepted=False is still Degraded).
	"apiextensions.k8s.io/CustomResourceDefinition": "until the API server has established it",
}

// transientHealth checks that argocd-cm overrides the health of each such
// kind the tree applies without answering Degraded: a Degraded resource
// fails a sync with waves, and the root's sync with it (K5).
func (t *Tree) transientHealth(cm map[string]string) []error {
	var errs []error
	seen := map[string]bool{}
	for _, o := range t.AllObjects() {
		group, _, _ := strings.Cut(o.APIVersion, "/")
		gk := group + "/" + o.Kind
		why, ok := notReadyAtFirst[gk]
		if !ok || seen[gk] {
			continue
		}
		seen[gk] = true
		key := "resource.customizations.health." + group + "_" + o.Kind
		if lua, ok := cm[key]; !ok || strings.Contains(lua, "Degraded") && !strings.Contains(lua, "Established") {
			errs = append(errs, fmt.Errorf("%s: not ready %s is normal on a first sync, but ArgoCD's health check calls it Degraded, "+
				"which fails the root's sync until its retries run out: argocd-cm needs %s answering Progressing", o, why, key))
		}
	}
	return errs
}

// argocdCM returns the data of the argocd-cm the tree applies.
func (t *Tree) argocdCM() map[string]string {
	for _, a := range t.Apps {
		for _, o := range a.Objects {
			if o.Kind == "ConfigMap" && o.Name == "argocd-cm" {
				var cm struct{ Data map[string]string }
				_ = json.Unmarshal(o.JSON, &cm)
				return cm.Data
			}
		}
	}
	return nil
}

// sortedErrors sorts errors by message, for stable output.
func sortedErrors(errs []error) []error {
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}
