package check

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// Unset is the placeholder of a site value not filled in yet.
const Unset = "UNSET"

// SiteFile holds the values this repository cannot know.
const SiteFile = "kubernetes/base/components/site/site.yaml"

// UnsetValues lists the keys of SiteFile still set to Unset.
func UnsetValues(repoRoot string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(repoRoot, SiteFile))
	if err != nil {
		return nil, err
	}
	var cm struct{ Data map[string]string }
	if err := yaml.Unmarshal(b, &cm); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", SiteFile, err)
	}
	var out []string
	for k, v := range cm.Data {
		if v == Unset {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ProjectErrors checks every Application against ArgoCD's own rules and
// the fleet's: a real AppProject (not default) that permits its sources,
// destinations and every cluster-scoped kind it applies; automated sync
// with prune, self-heal and a retry with backoff (image pulls on Raspberry
// Pis are slow and flaky).
func (t *Tree) ProjectErrors() []error {
	projects := map[string]*AppProject{}
	for _, o := range t.AllObjects() {
		if o.Kind == "AppProject" {
			p := new(AppProject)
			if unmarshal(o, p) == nil {
				projects[p.Metadata.Name] = p
			}
		}
	}
	var errs []error
	for _, a := range t.Apps {
		errs = append(errs, syncPolicyErrors(a)...)
		p, ok := projects[a.Spec.Project]
		if !ok || a.Spec.Project == "default" {
			errs = append(errs, fmt.Errorf("Application %s: project %q: want an AppProject of the tree, not default (which allows any source, destination and cluster resource)", a.Metadata.Name, a.Spec.Project))
			continue
		}
		errs = append(errs, projectAllows(a, p)...)
	}
	return errs
}

func syncPolicyErrors(a *App) []error {
	name := a.Metadata.Name
	sp := a.Spec.SyncPolicy
	if sp == nil || sp.Automated == nil || !sp.Automated.Prune || !sp.Automated.SelfHeal {
		return []error{fmt.Errorf("Application %s: want automated sync with prune and selfHeal", name)}
	}
	r := sp.Retry
	if r == nil || r.Backoff == nil || r.Limit == 0 {
		return []error{fmt.Errorf("Application %s: no syncPolicy.retry with a limit and a backoff: one failed sync (a slow image pull, a CRD not yet there) would stay failed", name)}
	}
	d, err1 := time.ParseDuration(r.Backoff.Duration)
	m, err2 := time.ParseDuration(r.Backoff.MaxDuration)
	if err1 != nil || err2 != nil || d <= 0 || m < d {
		return []error{fmt.Errorf("Application %s: retry backoff duration %q / maxDuration %q: want durations, max ≥ duration", name, r.Backoff.Duration, r.Backoff.MaxDuration)}
	}
	return nil
}

func projectAllows(a *App, p *AppProject) []error {
	var errs []error
	name := a.Metadata.Name
	if slices.Contains(p.Spec.SourceRepos, "*") {
		errs = append(errs, fmt.Errorf("AppProject %s: sourceRepos \"*\" allows any repository", p.Metadata.Name))
	}
	for _, s := range a.AllSources() {
		if !slices.ContainsFunc(p.Spec.SourceRepos, func(r string) bool { return sameRepo(r, s.RepoURL) }) {
			errs = append(errs, fmt.Errorf("Application %s: source %s is not in AppProject %s's sourceRepos", name, s.RepoURL, p.Metadata.Name))
		}
	}
	errs = append(errs, destinationErrors(a, p)...)
	for _, d := range p.Spec.Destinations {
		if d.Namespace == "*" {
			errs = append(errs, fmt.Errorf("AppProject %s: destination namespace \"*\" allows every namespace", p.Metadata.Name))
		}
	}
	return append(errs, clusterKindErrors(a, p)...)
}

// destinationErrors checks the Application's destination and the
// namespace of each object against the project. The destination namespace is
// checked even when empty: ArgoCD matches "" against each destination of the
// project like any namespace (argo-cd#11510), so an Application of only
// cluster-scoped objects without one is an InvalidSpecError unless the
// project allows every namespace.
func destinationErrors(a *App, p *AppProject) []error {
	var errs []error
	server, dest := a.Spec.Destination.Server, a.Spec.Destination.Namespace
	if dest == "" && !destinationAllowed(p, server, dest) {
		errs = append(errs, fmt.Errorf("Application %s: no destination namespace, and AppProject %s permits none that matches the empty one: "+
			"ArgoCD marks it InvalidSpecError (argo-cd#11510), its health stays Unknown and the parent's wave %d waits forever; set destination.namespace",
			a.Metadata.Name, p.Metadata.Name, a.Wave))
	}
	namespaces := map[string]bool{dest: dest != ""}
	for _, o := range a.Objects {
		if o.Namespace != "" {
			namespaces[o.Namespace] = true
		}
	}
	for ns, check := range namespaces {
		if check && !destinationAllowed(p, server, ns) {
			errs = append(errs, fmt.Errorf("Application %s: namespace %s is not a destination of AppProject %s", a.Metadata.Name, ns, p.Metadata.Name))
		}
	}
	return errs
}

func destinationAllowed(p *AppProject, server, ns string) bool {
	for _, d := range p.Spec.Destinations {
		if (d.Server == server || d.Server == "*") && (d.Namespace == ns || d.Namespace == "*") {
			return true
		}
	}
	return false
}

func clusterKindErrors(a *App, p *AppProject) []error {
	var errs []error
	for _, g := range p.Spec.ClusterResourceWhitelist {
		if g.Group == "*" && g.Kind == "*" {
			errs = append(errs, fmt.Errorf("AppProject %s: clusterResourceWhitelist */* allows every cluster-scoped kind", p.Metadata.Name))
		}
	}
	seen := map[string]bool{}
	for _, o := range a.Objects {
		if o.Namespace != "" || seen[o.APIVersion+o.Kind] {
			continue
		}
		seen[o.APIVersion+o.Kind] = true
		group, _, _ := strings.Cut(o.APIVersion, "/")
		if !strings.Contains(o.APIVersion, "/") {
			group = ""
		}
		if !slices.ContainsFunc(p.Spec.ClusterResourceWhitelist, func(g GroupKind) bool {
			return (g.Group == group || g.Group == "*") && (g.Kind == o.Kind || g.Kind == "*")
		}) {
			errs = append(errs, fmt.Errorf("Application %s: cluster-scoped %s is not in AppProject %s's clusterResourceWhitelist: the sync fails", name(a), kindOf(group, o.Kind), p.Metadata.Name))
		}
	}
	return errs
}

func name(a *App) string { return a.Metadata.Name }

func kindOf(group, kind string) string {
	if group == "" {
		return kind
	}
	return group + "/" + kind
}

// RetentionErrors checks that data outlives its Application: every
// PersistentVolumeClaim of an Application with the resources finalizer is
// kept on deletion (Delete=false) and never pruned (Prune=false).
func (t *Tree) RetentionErrors() []error {
	var errs []error
	for _, a := range t.Apps {
		if !slices.Contains(a.Metadata.Finalizers, "resources-finalizer.argocd.argoproj.io") {
			continue
		}
		for _, o := range a.Objects {
			if o.Kind != "PersistentVolumeClaim" {
				continue
			}
			for _, opt := range []string{"Delete=false", "Prune=false"} {
				if !hasSyncOption(o, opt) {
					errs = append(errs, fmt.Errorf("%s (Application %s): sync-options lack %s: its data would be deleted with the Application", o, a.Metadata.Name, opt))
				}
			}
		}
	}
	return errs
}

// ScopeErrors reports objects whose namespace does not fit their kind's
// scope: a namespace on a cluster-scoped object (kustomize's namespace: sets
// it on custom kinds it does not know) is rejected or diffs forever.
func (t *Tree) ScopeErrors() []error {
	var errs []error
	for _, o := range t.AllObjects() {
		if o.Namespace != "" && !t.Namespaced(o) {
			errs = append(errs, fmt.Errorf("%s: %s is cluster-scoped but has namespace %s", o, o.Kind, o.Namespace))
		}
	}
	return errs
}

// HostNetworkPolicies reports NetworkPolicies that select only pods on the
// host network: NetworkPolicy does not apply to those, so the policy
// protects nothing.
func (t *Tree) HostNetworkPolicies() []error {
	type pod struct {
		ns     string
		labels labels.Set
		host   bool
	}
	var pods []pod
	objs := t.AllObjects()
	for _, w := range objs {
		if w.Kind != "Deployment" && w.Kind != "StatefulSet" && w.Kind != "DaemonSet" {
			continue
		}
		var tmpl struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		if json.Unmarshal(w.JSON, &tmpl) == nil {
			pods = append(pods, pod{w.Namespace, tmpl.Spec.Template.Labels, tmpl.Spec.Template.Spec.HostNetwork})
		}
	}
	var errs []error
	for _, o := range objs {
		var np networkingv1.NetworkPolicy
		if o.Kind != "NetworkPolicy" || json.Unmarshal(o.JSON, &np) != nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			continue
		}
		matched, host := 0, 0
		for _, p := range pods {
			if p.ns == o.Namespace && sel.Matches(p.labels) {
				matched++
				if p.host {
					host++
				}
			}
		}
		if matched > 0 && matched == host {
			errs = append(errs, fmt.Errorf("%s: selects only hostNetwork pods, to which NetworkPolicy does not apply: it protects nothing", o))
		}
	}
	return errs
}
