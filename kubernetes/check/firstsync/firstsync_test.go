//go:build firstsync

package firstsync

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/avalanche-fleet/avalanche/kubernetes/check"
	"github.com/avalanche-fleet/avalanche/kubernetes/check/kubetest"
)

// TestFirstSync bootstraps an empty cluster as docs/kubernetes.md says
// (ArgoCD's manifests, the Bitwarden token, the AppProjects and the root
// Application) and lets ArgoCD's real application controller and
// repo-server sync the whole tree: the root and every child Application must
// reach Synced and Healthy, and no sync operation may fail on the way (a
// failed sync is retried a few times, then ArgoCD stops auto-syncing that
// commit).
//
// What is real: the API server (CRD schemas, validation, server-side apply),
// the controllers (Deployments, ReplicaSets, StatefulSets, Jobs, volume
// binding, scheduling), ArgoCD's manifest generation (helm and kustomize
// CLIs), project checks, sync waves, hooks, health checks (with the tree's
// argocd-cm customisations) and retries. What is played: pods run as kwok
// makes them (no image runs), no admission webhook is called (the operators
// that serve them do not run), and the operators' statuses are set by the
// test (operators), step-ca and bitwarden-sdk-server being unreachable for
// the first 45 s as on a real first sync.
func TestFirstSync(t *testing.T) {
	srv := startServers(t, fillSite)
	c := kubetest.Start(t, "--disable-admission-plugins=ValidatingAdmissionWebhook,MutatingAdmissionWebhook")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	bootstrap(ctx, t, c, srv.work)
	startArgoCD(t, c)
	// Step 3 of the bootstrap, with ArgoCD running as it is by then; the
	// pause lets the controller see the projects before the root names one.
	a := newApplier(c)
	a.apply(ctx, t, readYAML(t, filepath.Join(srv.work, "kubernetes/clusters/main/projects.yaml")))
	time.Sleep(5 * time.Second)
	a.apply(ctx, t, readYAML(t, filepath.Join(srv.work, "kubernetes/clusters/main/root.yaml")))
	ops := &operators{c: c, dyn: dynamic.NewForConfigOrDie(c.Config), unreachable: 45 * time.Second}
	go ops.run(ctx, t)
	want := expectedApps(t, srv.work)
	waitSynced(ctx, t, c, want, 10*time.Minute)
}

// fillSite fills the site values as an operator does before bootstrap.
func fillSite(work string) {
	p := filepath.Join(work, "kubernetes/base/components/site/site.yaml")
	b, _ := os.ReadFile(p)
	s := string(b)
	for k, v := range map[string]string{
		"bitwarden-organization-id": "0f5a6d9e-3c1b-4c7e-9f2a-1b2c3d4e5f60",
		"bitwarden-project-id":      "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
		"exit-node-ip":              "100.101.102.103",
		"step-ca-root-ca":           base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nplayed\n-----END CERTIFICATE-----\n")),
	} {
		s = strings.Replace(s, k+": UNSET", k+": "+v, 1)
	}
	_ = os.WriteFile(p, []byte(s), 0o644)
}

// bootstrap does steps 1 and 2 of docs/kubernetes.md's "Bootstrap from an
// empty cluster": ArgoCD's manifests and the Bitwarden token.
func bootstrap(ctx context.Context, t *testing.T, c *kubetest.Cluster, work string) {
	t.Helper()
	objs, err := check.Build(filepath.Join(work, "kubernetes/base/infra/argocd"))
	if err != nil {
		t.Fatal(err)
	}
	a := newApplier(c)
	a.apply(ctx, t, objs)
	// argocd-server, which does not run here, writes the signing key into
	// argocd-secret when it starts; the controller reads the settings.
	sec, err := c.Client.CoreV1().Secrets("argocd").Get(ctx, "argocd-secret", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data["server.secretkey"] = []byte("played-by-the-test-0123456789abcdef")
	if _, err := c.Client.CoreV1().Secrets("argocd").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "external-secrets"}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bitwarden-access-token", Namespace: "external-secrets"},
		StringData: map[string]string{"token": "played-by-the-test"}}
	if _, err := c.Client.CoreV1().Secrets("external-secrets").Create(ctx, token, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func readYAML(t *testing.T, path string) []check.Object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []check.Object
	for _, doc := range strings.Split(string(b), "\n---\n") {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var u unstructured.Unstructured
		if err := u.UnmarshalJSON(j); err != nil {
			continue // comments only
		}
		out = append(out, check.Object{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(), JSON: j})
	}
	return out
}

// expectedApps lists the root and the Applications it applies.
func expectedApps(t *testing.T, work string) []string {
	t.Helper()
	objs, err := check.Build(filepath.Join(work, "kubernetes/clusters/main"))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{check.RootApplication}
	for _, o := range objs {
		if o.Kind == "Application" && o.Name != check.RootApplication {
			names = append(names, o.Name)
		}
	}
	sort.Strings(names)
	return names
}

var gvrApplication = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// waitSynced waits until every wanted Application is Synced and Healthy,
// failing at once on a failed sync operation or an invalid spec.
func waitSynced(ctx context.Context, t *testing.T, c *kubetest.Cluster, want []string, timeout time.Duration) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(c.Config)
	start := time.Now()
	var state map[string]appState
	invalidSince := map[string]time.Time{}
	c.Eventually(t, timeout, "every Application Synced and Healthy", func() (bool, error) {
		l, err := dyn.Resource(gvrApplication).Namespace("argocd").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		state = map[string]appState{}
		for _, u := range l.Items {
			s := readState(u)
			state[u.GetName()] = s
			if s.invalid == "" {
				delete(invalidSince, u.GetName())
			} else if _, ok := invalidSince[u.GetName()]; !ok {
				invalidSince[u.GetName()] = time.Now()
			}
			// The controller may judge an Application before its informers
			// have the AppProjects: only a lasting InvalidSpecError counts.
			if s.invalid != "" && time.Since(invalidSince[u.GetName()]) > time.Minute {
				t.Fatalf("after %s: Application %s: %s\n%s", since(start), u.GetName(), s.invalid, table(state))
			}
			if s.phase == "Failed" || s.phase == "Error" || s.retries > 0 {
				t.Fatalf("after %s: Application %s: sync operation %s: %s (ArgoCD retries a failed sync a few times, then stops auto-syncing the commit)\n%s",
					since(start), u.GetName(), s.phase, s.message, table(state))
			}
		}
		for _, name := range want {
			if s, ok := state[name]; !ok || s.sync != "Synced" || s.health != "Healthy" {
				return false, fmt.Errorf("not yet:\n%s", table(state))
			}
		}
		return true, nil
	})
	t.Logf("every Application Synced and Healthy after %s:\n%s", since(start), table(state))
}

type appState struct {
	sync, health, phase, message, invalid string
	retries                               int64
}

func readState(u unstructured.Unstructured) appState {
	var s appState
	s.sync, _, _ = unstructured.NestedString(u.Object, "status", "sync", "status")
	s.health, _, _ = unstructured.NestedString(u.Object, "status", "health", "status")
	s.phase, _, _ = unstructured.NestedString(u.Object, "status", "operationState", "phase")
	s.message, _, _ = unstructured.NestedString(u.Object, "status", "operationState", "message")
	s.retries, _, _ = unstructured.NestedInt64(u.Object, "status", "operationState", "retryCount")
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "InvalidSpecError" {
			s.invalid = fmt.Sprintf("InvalidSpecError: %v", m["message"])
		}
	}
	return s
}

func table(state map[string]appState) string {
	var names []string
	for n := range state {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		s := state[n]
		fmt.Fprintf(&b, "  %-16s %-10s %-12s %-10s %.200s\n", n, s.sync, s.health, s.phase, s.message)
	}
	return b.String()
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Second) }
