package firstsync

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/avalanche-fleet/avalanche/kubernetes/check/kubetest"
)

// explainOnFailure registers a cleanup that, when the test has failed,
// prints every resource an Application reports out of sync, live and with
// its managed fields: what ArgoCD's diff saw. Registered after the cluster
// starts, it runs before the cluster stops.
func explainOnFailure(t *testing.T, c *kubetest.Cluster) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		t.Log(explain(ctx, c))
	})
}

func explain(ctx context.Context, c *kubetest.Cluster) string {
	a := newApplier(c)
	l, err := a.dyn.Resource(gvrApplication).Namespace("argocd").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Sprintf("listing Applications: %v", err)
	}
	var b strings.Builder
	for _, app := range l.Items {
		res, _, _ := unstructured.NestedSlice(app.Object, "status", "resources")
		for _, r := range res {
			m, _ := r.(map[string]any)
			if m["status"] == "Synced" {
				continue
			}
			fmt.Fprintf(&b, "Application %s: %v %v/%v %v\n", app.GetName(), m["kind"], m["namespace"], m["name"], m["status"])
			fmt.Fprintf(&b, "%s\n", liveYAML(ctx, a, m))
		}
	}
	return b.String()
}

func liveYAML(ctx context.Context, a *applier, m map[string]any) string {
	group, _ := m["group"].(string)
	version, _ := m["version"].(string)
	kind, _ := m["kind"].(string)
	ns, _ := m["namespace"].(string)
	name, _ := m["name"].(string)
	mapping, err := a.mapper.RESTMapping(schema.GroupKind{Group: group, Kind: kind}, version)
	if err != nil {
		return err.Error()
	}
	u, err := a.dyn.Resource(mapping.Resource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	y, _ := yaml.Marshal(u.Object)
	return string(y)
}
