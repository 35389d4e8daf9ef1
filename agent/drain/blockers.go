package drain

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kdrain "k8s.io/kubectl/pkg/drain"
)

// blockers says which pods are still on the node after a timed-out drain
// and, for each, the PodDisruptionBudgets whose selector matches it and
// how many disruptions they allow: "pod default/web-x7 is held by
// PodDisruptionBudget default/web (0 disruptions allowed: 2 healthy, 2
// desired)". kubectl's own error names only the pod.
func (n *Node) blockers(ctx context.Context, h *kdrain.Helper) string {
	h.Ctx = ctx
	list, errs := h.GetPodsForDeletion(n.Name)
	if len(errs) > 0 || list == nil {
		return fmt.Sprintf("listing the pods left: %v", errs)
	}
	pods := list.Pods()
	if len(pods) == 0 {
		return "every pod left while the drain gave up"
	}
	var lines []string
	for _, p := range pods {
		lines = append(lines, n.blocker(ctx, p))
	}
	return strings.Join(lines, "; ")
}

// blocker describes what holds one pod.
func (n *Node) blocker(ctx context.Context, p corev1.Pod) string {
	name := p.Namespace + "/" + p.Name
	if p.DeletionTimestamp != nil {
		return fmt.Sprintf("pod %s was evicted but has not terminated (deleted at %s)", name, p.DeletionTimestamp.UTC())
	}
	pdbs, err := n.Client.PolicyV1().PodDisruptionBudgets(p.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Sprintf("pod %s is still on the node (listing its PodDisruptionBudgets: %v)", name, err)
	}
	var held []string
	for _, b := range pdbs.Items {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		held = append(held, fmt.Sprintf("PodDisruptionBudget %s/%s (%d disruptions allowed: %d healthy, %d desired)",
			b.Namespace, b.Name, b.Status.DisruptionsAllowed, b.Status.CurrentHealthy, b.Status.DesiredHealthy))
	}
	if len(held) == 0 {
		return fmt.Sprintf("pod %s is still on the node (no PodDisruptionBudget matches it)", name)
	}
	return fmt.Sprintf("pod %s is held by %s", name, strings.Join(held, " and "))
}
