package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/avalanche-fleet/avalanche/agent/drain"
	"github.com/avalanche-fleet/avalanche/kubernetes/check/kubetest"
)

// spare is the second node, where the drained node's pods go.
const spare = "kwok-node-1"

// TestDrain runs avalanche-drain against a real control plane: kube-apiserver,
// kube-controller-manager (whose disruption controller makes an eviction a
// budget forbids answer 429), kube-scheduler and kwok standing in for the
// kubelets of two nodes. One cluster serves every case, in order.
func TestDrain(t *testing.T) {
	c := kubetest.Start(t)
	ctx := context.Background()
	node := kubetest.NodeName
	w := &world{t: t, c: c, ctx: ctx}
	// Placed while kwok-node-0 is the only node, so they all start there.
	w.replicaSet("web", 3, true)
	w.pdb("web", intstr.FromInt32(2))
	w.daemonSet("agent")
	w.mirrorPod(node)
	w.waitPods("app=web", node, 3)
	w.waitPods("app=agent", node, 1)
	w.addNode(spare)

	t.Run("drain within the budget", func(t *testing.T) {
		var log bytes.Buffer
		start := time.Now()
		if err := run(ctx, w.args("-timeout=3m", "drain"), &log); err != nil {
			t.Fatalf("drain: %v\n%s", err, log.String())
		}
		t.Logf("drained in %s", time.Since(start).Round(time.Second))
		if !w.unschedulable(node) {
			t.Errorf("node %s is schedulable after drain; want cordoned", node)
		}
		if got := w.podsOn("app=web", node); len(got) != 0 {
			t.Errorf("web pods still on %s after drain: %v", node, got)
		}
		if got := w.podsOn("app=agent", node); len(got) != 1 {
			t.Errorf("DaemonSet pods on %s after drain: %v; want its one pod left", node, got)
		}
		if got := w.podsOn("mirror=yes", node); len(got) != 1 {
			t.Errorf("mirror pods on %s after drain: %v; want it left", node, got)
		}
		// The budget was respected: kubectl evicts the 3 pods at once and
		// the budget allows 1 disruption, so the API server refused (429)
		// at least one eviction, which was retried once a replacement was
		// Ready on the spare node.
		if !strings.Contains(log.String(), "will retry") {
			t.Errorf("no eviction was refused and retried; log:\n%s", log.String())
		}
	})

	t.Run("wait-ready and uncordon", func(t *testing.T) {
		var log bytes.Buffer
		if err := run(ctx, w.args("-timeout=1m", "wait-ready"), &log); err != nil {
			t.Fatalf("wait-ready: %v\n%s", err, log.String())
		}
		if err := run(ctx, w.args("uncordon"), &log); err != nil {
			t.Fatalf("uncordon: %v\n%s", err, log.String())
		}
		if w.unschedulable(node) {
			t.Errorf("node %s still cordoned after uncordon", node)
		}
		err := run(ctx, append(w.args("-timeout=3s"), "-node=nosuchnode", "wait-ready"), &log)
		if err == nil || !strings.Contains(err.Error(), "nosuchnode") {
			t.Errorf("wait-ready of a missing node = %v; want an error naming it", err)
		}
		future := time.Now().Add(time.Hour).Format(time.RFC3339)
		err = run(ctx, w.args("-timeout=3s", "-since="+future, "wait-ready"), &log)
		if !errors.Is(err, drain.ErrTimeout) || !strings.Contains(err.Error(), "no heartbeat since") {
			t.Errorf("wait-ready for a heartbeat an hour ahead = %v; want a timeout saying so", err)
		}
	})

	t.Run("a budget that never allows eviction", func(t *testing.T) {
		w.moveWebTo(node)
		w.pdb("web", intstr.FromInt32(3)) // 3 of 3: no disruption ever
		var log bytes.Buffer
		start := time.Now()
		err := run(ctx, w.args("-timeout=20s", "drain"), &log)
		t.Logf("drain gave up after %s: %v", time.Since(start).Round(time.Second), err)
		if !errors.Is(err, drain.ErrTimeout) {
			t.Fatalf("drain against minAvailable=3 of 3 = %v; want ErrTimeout\n%s", err, log.String())
		}
		pods := w.podsOn("app=web", node)
		if len(pods) == 0 {
			t.Fatalf("no web pod left on %s; the budget did not hold", node)
		}
		for _, want := range []string{"pod default/" + pods[0], "PodDisruptionBudget default/web", "0 disruptions allowed", "after 20s"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("drain error %q does not say %q", err, want)
			}
		}
		if !strings.Contains(log.String(), "will retry") {
			t.Errorf("no 429 was retried; log:\n%s", log.String())
		}
		if !w.unschedulable(node) {
			t.Errorf("drain that failed uncordoned the node itself; the caller decides")
		}
		if err := run(ctx, w.args("uncordon"), &log); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{}, {"reboot"}, {"-since=yesterday", "wait-ready"}} {
			if err := run(ctx, append(w.args(), args...), &bytes.Buffer{}); !errors.Is(err, errUsage) {
				t.Errorf("run(%q) = %v; want a usage error", args, err)
			}
		}
	})
}

// world builds the workloads of the test.
type world struct {
	t   *testing.T
	c   *kubetest.Cluster
	ctx context.Context
}

func (w *world) args(extra ...string) []string {
	return append([]string{"-kubeconfig=" + w.c.Kubeconfig, "-node=" + kubetest.NodeName}, extra...)
}

func podSpec(labels map[string]string, emptyDir bool) corev1.PodTemplateSpec {
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c:1"}}}
	if emptyDir { // kubectl refuses these without --delete-emptydir-data
		spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	}
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}
}

func (w *world) replicaSet(name string, n int32, emptyDir bool) {
	labels := map[string]string{"app": name}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podSpec(labels, emptyDir)},
	}
	if _, err := w.c.Client.AppsV1().ReplicaSets("default").Create(w.ctx, rs, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) daemonSet(name string) {
	labels := map[string]string{"app": name}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: podSpec(labels, false)},
	}
	if _, err := w.c.Client.AppsV1().DaemonSets("default").Create(w.ctx, ds, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// mirrorPod creates what a kubelet creates for a static pod: a pod bound
// to the node with the mirror annotation.
func (w *world) mirrorPod(node string) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "static-" + node, Namespace: "default", Labels: map[string]string{"mirror": "yes"},
			Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "static"}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c:1"}}},
	}
	if _, err := w.c.Client.CoreV1().Pods("default").Create(w.ctx, p, metav1.CreateOptions{}); err != nil {
		w.t.Fatalf("creating a mirror pod: %v", err)
	}
}

// pdb creates or updates the budget and waits until the disruption
// controller has observed it.
func (w *world) pdb(name string, minAvailable intstr.IntOrString) {
	api := w.c.Client.PolicyV1().PodDisruptionBudgets("default")
	b, err := api.Get(w.ctx, name, metav1.GetOptions{})
	if err == nil {
		b.Spec.MinAvailable = &minAvailable
		_, err = api.Update(w.ctx, b, metav1.UpdateOptions{})
	} else {
		_, err = api.Create(w.ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvailable,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}},
		}, metav1.CreateOptions{})
	}
	if err != nil {
		w.t.Fatal(err)
	}
	w.c.Eventually(w.t, time.Minute, "PodDisruptionBudget "+name+" observed", func() (bool, error) {
		b, err := api.Get(w.ctx, name, metav1.GetOptions{})
		return err == nil && b.Status.ObservedGeneration == b.Generation, err
	})
}

// addNode adds a node that kwok keeps Ready (it manages every node).
func (w *world) addNode(name string) {
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("500")}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}},
		Status: corev1.NodeStatus{Allocatable: res, Capacity: res},
	}
	if _, err := w.c.Client.CoreV1().Nodes().Create(w.ctx, n, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	node := &drain.Node{Client: w.c.Client, Name: name, Poll: 250 * time.Millisecond}
	if err := node.WaitReady(w.ctx, 2*time.Minute, time.Time{}); err != nil {
		w.t.Fatal(err)
	}
}

// podsOn lists the running, not deleted pods matching selector on node.
func (w *world) podsOn(selector, node string) []string {
	pods, err := w.c.Client.CoreV1().Pods("").List(w.ctx, metav1.ListOptions{LabelSelector: selector,
		FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		w.t.Fatal(err)
	}
	var names []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	return names
}

// waitPods waits until n pods matching selector run Ready on node.
func (w *world) waitPods(selector, node string, n int) {
	w.c.Eventually(w.t, 2*time.Minute, selector+" Ready on "+node, func() (bool, error) {
		pods, err := w.c.Client.CoreV1().Pods("").List(w.ctx, metav1.ListOptions{LabelSelector: selector,
			FieldSelector: "spec.nodeName=" + node})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
					ready++
				}
			}
		}
		return ready == n, nil
	})
}

// moveWebTo brings the web pods back to node: the spare node is cordoned
// and its web pods deleted, so their replacements land on node.
func (w *world) moveWebTo(node string) {
	sp := &drain.Node{Client: w.c.Client, Name: spare}
	if err := sp.Cordon(w.ctx); err != nil {
		w.t.Fatal(err)
	}
	err := w.c.Client.CoreV1().Pods("default").DeleteCollection(w.ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: "app=web", FieldSelector: "spec.nodeName=" + spare})
	if err != nil {
		w.t.Fatal(err)
	}
	w.waitPods("app=web", node, 3)
	w.c.Eventually(w.t, time.Minute, "web budget healthy", func() (bool, error) {
		b, err := w.c.Client.PolicyV1().PodDisruptionBudgets("default").Get(w.ctx, "web", metav1.GetOptions{})
		return err == nil && b.Status.CurrentHealthy == 3, err
	})
}

func (w *world) unschedulable(node string) bool {
	n, err := w.c.Client.CoreV1().Nodes().Get(w.ctx, node, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return n.Spec.Unschedulable
}
