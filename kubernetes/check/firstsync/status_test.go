package firstsync

import (
	"context"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func networkingIngress(host string) networkingv1.IngressLoadBalancerIngress {
	return networkingv1.IngressLoadBalancerIngress{Hostname: host}
}

func ptrValue(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func cond(typ, status, reason, msg string) map[string]any {
	return map[string]any{"type": typ, "status": status, "reason": reason, "message": msg,
		"lastTransitionTime": metav1.Now().UTC().Format("2006-01-02T15:04:05Z")}
}

// setReady sets the Ready condition (and extra ones) when it changes.
func (o *operators) setReady(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured, ready bool, reason, msg string, extra ...map[string]any) error {
	status := "False"
	if ready {
		status = "True"
	}
	return o.setConditions(ctx, gvr, u, append([]map[string]any{cond("Ready", status, reason, msg)}, extra...)...)
}

// setConditions writes status.conditions unless type, status and reason
// are already what they say.
func (o *operators) setConditions(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured, conds ...map[string]any) error {
	old, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	if sameConditions(old, conds) {
		return nil
	}
	list := make([]any, len(conds))
	for i, c := range conds {
		list[i] = c
	}
	if err := unstructured.SetNestedSlice(u.Object, list, "status", "conditions"); err != nil {
		return err
	}
	ri := o.dyn.Resource(gvr).Namespace(u.GetNamespace())
	if u.GetNamespace() == "" {
		_, err := o.dyn.Resource(gvr).UpdateStatus(ctx, u, metav1.UpdateOptions{})
		return err
	}
	_, err := ri.UpdateStatus(ctx, u, metav1.UpdateOptions{})
	return err
}

func sameConditions(old []any, conds []map[string]any) bool {
	if len(old) != len(conds) {
		return false
	}
	for i, c := range conds {
		m, ok := old[i].(map[string]any)
		if !ok {
			return false
		}
		for _, k := range []string{"type", "status", "reason"} {
			if !reflect.DeepEqual(m[k], c[k]) {
				return false
			}
		}
	}
	return true
}

func (o *operators) isReady(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) bool {
	u, err := o.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func (o *operators) secretExists(ctx context.Context, ns, name string) bool {
	_, err := o.c.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	return err == nil
}

// writeSecret creates the Secret an operator writes, with placeholder
// values for keys.
func (o *operators) writeSecret(ctx context.Context, ns, name string, typ corev1.SecretType, keys ...string) error {
	data := map[string][]byte{}
	for _, k := range keys {
		data[k] = []byte("played-by-the-test")
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: typ, Data: data}
	_, err := o.c.Client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
