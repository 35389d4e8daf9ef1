package firstsync

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/avalanche-fleet/avalanche/kubernetes/check/kubetest"
)

// operators plays what no operator runs here to do: it sets the status
// that cert-manager, external-secrets, the Prometheus operator, Traefik
// (Ingress addresses) and a volume provisioner would set, including the
// states a real first sync goes through: step-ca (the ACME ClusterIssuer)
// unreachable for a while, the ClusterSecretStore failing validation until
// bitwarden-sdk-server has its certificate, ExternalSecrets failing while
// the store is not ready. Like the real operators it writes only the status
// subresource and the Secrets they own: never a field ArgoCD applied, so
// that a diff ArgoCD reports is the tree's (observability's ExternalSecret
// stayed OutOfSync here under external-secrets 1.3.1: its CRD defaulted
// fields inside spec.data, which ArgoCD's server-side-apply diff reads as
// drift; check.ServerSideApplyDrift now finds that statically).
type operators struct {
	c           *kubetest.Cluster
	dyn         dynamic.Interface
	unreachable time.Duration // how long step-ca and bitwarden-sdk-server stay unreachable
	mu          sync.Mutex
	first       map[string]time.Time // when an object was first seen
}

var (
	gvrClusterIssuer = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "clusterissuers"}
	gvrIssuer        = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "issuers"}
	gvrCertificate   = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}
	gvrStore         = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "clustersecretstores"}
	gvrExternal      = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}
	gvrPrometheus    = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "prometheuses"}
)

// run plays the operators every second until ctx ends.
func (o *operators) run(ctx context.Context, t *testing.T) {
	o.first = map[string]time.Time{}
	for ctx.Err() == nil {
		for _, step := range []func(context.Context) error{o.ingresses, o.volumes, o.issuers, o.certificates, o.store, o.externalSecrets, o.prometheus} {
			if err := step(ctx); err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				t.Logf("operator stand-in: %v", err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// age is how long ago key was first seen.
func (o *operators) age(key string) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.first[key]; !ok {
		o.first[key] = time.Now()
	}
	return time.Since(o.first[key])
}

// ingresses: Traefik publishes ingress.internal as every Ingress's address.
func (o *operators) ingresses(ctx context.Context) error {
	l, err := o.c.Client.NetworkingV1().Ingresses("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, ing := range l.Items {
		if len(ing.Status.LoadBalancer.Ingress) > 0 {
			continue
		}
		ing.Status.LoadBalancer.Ingress = append(ing.Status.LoadBalancer.Ingress, networkingIngress("ingress.internal"))
		if _, err := o.c.Client.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, &ing, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// volumes: the provisioner makes a volume for every pending claim; the real
// persistent-volume controller binds them.
func (o *operators) volumes(ctx context.Context) error {
	l, err := o.c.Client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, pvc := range l.Items {
		if pvc.Status.Phase != corev1.ClaimPending || pvc.Spec.VolumeName != "" {
			continue
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv-" + string(pvc.UID)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
				AccessModes:                   pvc.Spec.AccessModes,
				StorageClassName:              ptrValue(pvc.Spec.StorageClassName),
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				ClaimRef:                      &corev1.ObjectReference{Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + string(pvc.UID)}},
			},
		}
		if _, err := o.c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// issuers: an ACME ClusterIssuer (step-ca) is unreachable at first, then
// registers; a CA Issuer is ready once its CA Secret exists; others at once.
func (o *operators) issuers(ctx context.Context) error {
	for _, gvr := range []schema.GroupVersionResource{gvrClusterIssuer, gvrIssuer} {
		l, err := o.dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, u := range l.Items {
			ready, reason, msg := true, "Ready", "ready"
			if _, acme, _ := unstructured.NestedMap(u.Object, "spec", "acme"); acme && o.age("issuer/"+u.GetName()) < o.unreachable {
				ready, reason, msg = false, "ErrRegisterACMEAccount", "Failed to register ACME account: dial tcp: lookup ca.internal: no such host"
			}
			if secret, ok, _ := unstructured.NestedString(u.Object, "spec", "ca", "secretName"); ok && !o.secretExists(ctx, u.GetNamespace(), secret) {
				ready, reason, msg = false, "ErrGetKeyPair", "Error getting keypair for CA issuer: secret "+secret+" not found"
			}
			if err := o.setReady(ctx, gvr, &u, ready, reason, msg); err != nil {
				return err
			}
		}
	}
	return nil
}

// certificates: issued (Secret written) once the issuer is ready.
func (o *operators) certificates(ctx context.Context) error {
	l, err := o.dyn.Resource(gvrCertificate).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, u := range l.Items {
		kind, _, _ := unstructured.NestedString(u.Object, "spec", "issuerRef", "kind")
		name, _, _ := unstructured.NestedString(u.Object, "spec", "issuerRef", "name")
		gvr, ns := gvrIssuer, u.GetNamespace()
		if kind == "ClusterIssuer" {
			gvr, ns = gvrClusterIssuer, ""
		}
		if !o.isReady(ctx, gvr, ns, name) {
			if err := o.setReady(ctx, gvrCertificate, &u, false, "DoesNotExist", "Issuing certificate as Secret does not exist", cond("Issuing", "True", "DoesNotExist", "Issuing")); err != nil {
				return err
			}
			continue
		}
		secret, _, _ := unstructured.NestedString(u.Object, "spec", "secretName")
		if err := o.writeSecret(ctx, u.GetNamespace(), secret, corev1.SecretTypeTLS, "tls.crt", "tls.key", "ca.crt"); err != nil {
			return err
		}
		if err := o.setReady(ctx, gvrCertificate, &u, true, "Ready", "Certificate is up to date and has not expired"); err != nil {
			return err
		}
	}
	return nil
}

// store: the ClusterSecretStore validates once bitwarden-sdk-server serves
// (its TLS Secret exists, and after the start-up delay).
func (o *operators) store(ctx context.Context) error {
	l, err := o.dyn.Resource(gvrStore).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, u := range l.Items {
		up := o.secretExists(ctx, "external-secrets", "bitwarden-tls-certs") && o.age("store/"+u.GetName()) >= o.unreachable
		reason, msg := "Valid", "store validated"
		if !up {
			reason, msg = "ValidationFailed", "unable to validate store: dial tcp: lookup bitwarden-sdk-server.external-secrets.svc.cluster.local: connection refused"
		}
		if err := o.setReady(ctx, gvrStore, &u, up, reason, msg); err != nil {
			return err
		}
	}
	return nil
}

// externalSecrets: synced (Secret written) once their store is ready.
func (o *operators) externalSecrets(ctx context.Context) error {
	l, err := o.dyn.Resource(gvrExternal).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, u := range l.Items {
		store, _, _ := unstructured.NestedString(u.Object, "spec", "secretStoreRef", "name")
		if !o.isReady(ctx, gvrStore, "", store) {
			if err := o.setReady(ctx, gvrExternal, &u, false, "SecretSyncedError", "could not get secret data from provider: ClusterSecretStore "+store+" is not ready"); err != nil {
				return err
			}
			continue
		}
		target, _, _ := unstructured.NestedString(u.Object, "spec", "target", "name")
		if target == "" {
			target = u.GetName()
		}
		var keys []string
		data, _, _ := unstructured.NestedSlice(u.Object, "spec", "data")
		for _, d := range data {
			if m, ok := d.(map[string]any); ok {
				keys = append(keys, fmt.Sprint(m["secretKey"]))
			}
		}
		if err := o.writeSecret(ctx, u.GetNamespace(), target, corev1.SecretTypeOpaque, keys...); err != nil {
			return err
		}
		if err := o.setReady(ctx, gvrExternal, &u, true, "SecretSynced", "secret synced"); err != nil {
			return err
		}
	}
	return nil
}

// prometheus: the Prometheus operator reports every instance available.
func (o *operators) prometheus(ctx context.Context) error {
	l, err := o.dyn.Resource(gvrPrometheus).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, u := range l.Items {
		if err := o.setConditions(ctx, gvrPrometheus, &u, cond("Available", "True", "", ""), cond("Reconciled", "True", "", "")); err != nil {
			return err
		}
	}
	return nil
}
