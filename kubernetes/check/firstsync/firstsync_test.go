package firstsync

import (
	"context"
	"encoding/base64"
	"errors"
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
// CLIs), project checks, sync waves, hooks, diffs, health checks (with the
// tree's argocd-cm customisations) and retries. What is played: pods run as
// kwok makes them (no image runs), no admission webhook is called (the
// operators that serve them do not run), and the operators' statuses are set
// by the test (operators), step-ca and bitwarden-sdk-server being
// unreachable for the first 45 s as on a real first sync.
func TestFirstSync(t *testing.T) {
	if err := firstSync(t, nil, 25*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// firstSync runs one first sync of the tree, edited by edit (after the site
// values are filled), and returns nil once every Application is Synced and
// Healthy, or a *syncFailed when ArgoCD refuses an Application or fails a
// sync operation; when neither happens within timeout, the test fails.
func firstSync(t *testing.T, edit func(t *testing.T, work string), timeout time.Duration) error {
	t.Helper()
	srv := startServers(t, func(work string) {
		fillSite(work)
		if edit != nil {
			edit(t, work)
		}
	})
	c := kubetest.Start(t, "--disable-admission-plugins=ValidatingAdmissionWebhook,MutatingAdmissionWebhook")
	explainOnFailure(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	bootstrap(ctx, t, c, srv.work)
	controller := startArgoCD(t, c)
	// Step 3 of the bootstrap, with ArgoCD running as it is by then; the
	// pause lets the controller see the projects before the root names one.
	a := newApplier(c)
	a.apply(ctx, t, readYAML(t, filepath.Join(srv.work, "kubernetes/clusters/main/projects.yaml")))
	time.Sleep(5 * time.Second)
	a.apply(ctx, t, readYAML(t, filepath.Join(srv.work, "kubernetes/clusters/main/root.yaml")))
	ops := &operators{c: c, dyn: dynamic.NewForConfigOrDie(c.Config), unreachable: 45 * time.Second}
	go ops.run(ctx, t)
	err := waitSynced(ctx, t, c, expectedApps(t, srv.work), timeout)
	var failed *syncFailed
	if errors.As(err, &failed) {
		failed.health = healthChanges(controller.Tail(1<<20), failed.apps())
	}
	return err
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

// syncFailed is a first sync that cannot complete: ArgoCD refuses an
// Application (InvalidSpecError) or fails one's sync operation (which it
// retries a few times, then stops auto-syncing the commit).
type syncFailed struct {
	app    string // the Application
	reason string // InvalidSpecError: ..., or the operation's phase, message and failed tasks
	after  time.Duration
	table  string       // every Application's state then
	tasks  []failedTask // the operation's failed tasks
	health string       // how the Applications concerned changed health (from the controller's log)
}

func (e *syncFailed) Error() string {
	return fmt.Sprintf("after %s: Application %s: %s\n%s%s", e.after, e.app, e.reason, e.table, e.health)
}

// apps lists the failed Application and those of its failed tasks.
func (e *syncFailed) apps() []string {
	names := []string{e.app}
	for _, f := range e.tasks {
		if f.kind == "Application" {
			names = append(names, f.name)
		}
	}
	return names
}

// healthChanges returns the controller's log lines that record a health
// change of one of apps: a child Application's passing Degraded state,
// which fails its parent's wave, is often over before anyone looks.
func healthChanges(log string, apps []string) string {
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "Updated health status") {
			continue
		}
		for _, a := range apps {
			if strings.Contains(line, " application="+a+" ") {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

// waitSynced waits until every wanted Application is Synced and Healthy,
// returning a *syncFailed at once on a failed sync operation or a lasting
// invalid spec.
func waitSynced(ctx context.Context, t *testing.T, c *kubetest.Cluster, want []string, timeout time.Duration) error {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(c.Config)
	start := time.Now()
	var state map[string]appState
	var failed *syncFailed
	invalidSince := map[string]time.Time{}
	c.Eventually(t, timeout, "every Application Synced and Healthy, or a failure", func() (bool, error) {
		l, err := dyn.Resource(gvrApplication).Namespace("argocd").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		state = map[string]appState{}
		for _, u := range l.Items {
			state[u.GetName()] = readState(u)
		}
		for _, u := range l.Items {
			s := state[u.GetName()]
			if s.invalid == "" {
				delete(invalidSince, u.GetName())
			} else if _, ok := invalidSince[u.GetName()]; !ok {
				invalidSince[u.GetName()] = time.Now()
			}
			// The controller may judge an Application before its informers
			// have the AppProjects: only a lasting InvalidSpecError counts.
			if s.invalid != "" && time.Since(invalidSince[u.GetName()]) > time.Minute {
				failed = &syncFailed{app: u.GetName(), reason: s.invalid}
			}
			if s.phase == "Failed" || s.phase == "Error" || s.retries > 0 {
				failed = &syncFailed{app: u.GetName(), reason: fmt.Sprintf("sync operation %s: %s%s", s.phase, s.message, describe(s.failedTasks, state)), tasks: s.failedTasks}
			}
			if failed != nil {
				failed.after, failed.table = since(start), table(state)
				return true, nil
			}
		}
		for _, name := range want {
			if s, ok := state[name]; !ok || s.sync != "Synced" || s.health != "Healthy" {
				return false, fmt.Errorf("not yet:\n%s", table(state))
			}
		}
		return true, nil
	})
	if failed != nil {
		return failed
	}
	t.Logf("every Application Synced and Healthy after %s:\n%s", since(start), table(state))
	return nil
}

type appState struct {
	sync, health, phase, message, invalid string
	failedTasks                           []failedTask
	retries                               int64
}

// failedTask is a resource whose sync task failed.
type failedTask struct{ kind, name, message string }

// describe lists failed tasks, with the health of those that are
// Applications (whose failure is their health).
func describe(tasks []failedTask, state map[string]appState) string {
	var b strings.Builder
	for _, f := range tasks {
		fmt.Fprintf(&b, "; %s/%s failed: %q", f.kind, f.name, f.message)
		if f.kind == "Application" {
			fmt.Fprintf(&b, " (health %s)", state[f.name].health)
		}
	}
	return b.String()
}

func readState(u unstructured.Unstructured) appState {
	var s appState
	s.sync, _, _ = unstructured.NestedString(u.Object, "status", "sync", "status")
	s.health, _, _ = unstructured.NestedString(u.Object, "status", "health", "status")
	s.phase, _, _ = unstructured.NestedString(u.Object, "status", "operationState", "phase")
	s.message, _, _ = unstructured.NestedString(u.Object, "status", "operationState", "message")
	s.retries, _, _ = unstructured.NestedInt64(u.Object, "status", "operationState", "retryCount")
	tasks, _, _ := unstructured.NestedSlice(u.Object, "status", "operationState", "syncResult", "resources")
	for _, r := range tasks {
		if m, ok := r.(map[string]any); ok && (m["hookPhase"] == "Failed" || m["hookPhase"] == "Error") {
			s.failedTasks = append(s.failedTasks, failedTask{fmt.Sprint(m["kind"]), fmt.Sprint(m["name"]), fmt.Sprint(m["message"])})
		}
	}
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
