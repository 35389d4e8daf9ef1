package firstsync

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/avalanche-fleet/avalanche/kubernetes/check"
	"github.com/avalanche-fleet/avalanche/kubernetes/check/kubetest"
)

// applier applies objects server-side, as `kubectl apply --server-side`
// does at bootstrap.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(c *kubetest.Cluster) *applier {
	dc := discovery.NewDiscoveryClientForConfigOrDie(c.Config)
	return &applier{
		dyn:    dynamic.NewForConfigOrDie(c.Config),
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
	}
}

// apply applies objs, CustomResourceDefinitions first (retrying the others
// while the new kinds become known).
func (a *applier) apply(ctx context.Context, t *testing.T, objs []check.Object) {
	t.Helper()
	var rest []check.Object
	for _, o := range objs {
		if o.Kind == "CustomResourceDefinition" {
			if err := a.applyOne(ctx, o); err != nil {
				t.Fatal(err)
			}
			continue
		}
		rest = append(rest, o)
	}
	deadline := time.Now().Add(time.Minute)
	for _, o := range rest {
		for {
			err := a.applyOne(ctx, o)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			a.mapper.Reset()
			time.Sleep(time.Second)
		}
	}
}

func (a *applier) applyOne(ctx context.Context, o check.Object) error {
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(o.JSON, &u.Object); err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	gvk := schema.FromAPIVersionAndKind(o.APIVersion, o.Kind)
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("applying %s: %w", o, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == "namespace" {
		ri = a.dyn.Resource(m.Resource).Namespace(u.GetNamespace())
	}
	_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, o.JSON, metav1.PatchOptions{FieldManager: "kubectl", Force: ptr(true)})
	if err != nil {
		return fmt.Errorf("applying %s: %w", o, err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
