// Package drain cordons, drains, waits for and uncordons one Kubernetes
// node through the API server, with client-go and kubectl's drain package
// (the same code as `kubectl drain`): pods leave through the eviction API,
// so PodDisruptionBudgets are respected; an eviction a budget forbids
// (429) is retried until the timeout; DaemonSet pods and mirror (static)
// pods stay. It is the library behind avalanche-drain, the helper the agent
// runs around a switch that restarts k3s or a reboot.
//
// It is its own Go module so that the agent's module (and the agent's
// binary, which must stay small on a Raspberry Pi) never links client-go.
package drain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kdrain "k8s.io/kubectl/pkg/drain"
)

// Node drains one node. Set Client and Name; the other fields have
// defaults.
type Node struct {
	Client kubernetes.Interface
	Name   string
	// Log receives kubectl's progress lines (evicting pod …); nil discards.
	Log io.Writer
	// RetryDelay is the wait after an eviction a budget refused (429);
	// default 5s, as kubectl drain.
	RetryDelay time.Duration
	// Poll is how often WaitReady looks at the node; default 2s.
	Poll time.Duration
}

// ErrTimeout marks a drain or a wait that did not finish in time: cluster
// trouble (a budget that never allows eviction, a node that stays
// NotReady), never the fault of what is being deployed.
var ErrTimeout = errors.New("timed out")

// helper is kubectl's drainer with this package's choices:
//   - IgnoreAllDaemonSets: a DaemonSet's pod would come straight back on
//     the node (its controller tolerates unschedulable), so it stays, as
//     with kubectl drain --ignore-daemonsets;
//   - DeleteEmptyDirData: an emptyDir is scratch space that dies with the
//     pod anyway; k3s's own metrics-server mounts one, so without it every
//     drain of every node would fail (kubectl drain --delete-emptydir-data);
//   - Force false: a pod no controller owns would not come back anywhere;
//     the drain refuses it, naming it, and a person decides;
//   - GracePeriodSeconds -1: each pod's own terminationGracePeriodSeconds.
//
// Mirror pods (static pods of the kubelet) are always left by kubectl.
func (n *Node) helper(ctx context.Context, timeout time.Duration) *kdrain.Helper {
	out := n.Log
	if out == nil {
		out = io.Discard
	}
	delay := n.RetryDelay
	if delay == 0 {
		delay = 5 * time.Second
	}
	return &kdrain.Helper{
		Ctx:                  ctx,
		Client:               n.Client,
		GracePeriodSeconds:   -1,
		IgnoreAllDaemonSets:  true,
		DeleteEmptyDirData:   true,
		Timeout:              timeout,
		EvictErrorRetryDelay: delay,
		Out:                  out,
		ErrOut:               out,
	}
}

// Cordon marks the node unschedulable.
func (n *Node) Cordon(ctx context.Context) error { return n.setCordon(ctx, true) }

// Uncordon marks the node schedulable again.
func (n *Node) Uncordon(ctx context.Context) error { return n.setCordon(ctx, false) }

func (n *Node) setCordon(ctx context.Context, on bool) error {
	verb := "uncordoning"
	if on {
		verb = "cordoning"
	}
	node, err := n.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("%s node %s: %w", verb, n.Name, err)
	}
	if err := kdrain.RunCordonOrUncordon(n.helper(ctx, 0), node, on); err != nil {
		return fmt.Errorf("%s node %s: %w", verb, n.Name, err)
	}
	return nil
}

// Drain cordons the node and evicts its pods, waiting until they are gone,
// within timeout. When a budget keeps a pod on the node until the timeout,
// the error wraps ErrTimeout and names each pod left and the
// PodDisruptionBudget that holds it. Drain leaves the node cordoned even
// when it fails: the caller decides (the agent uncordons).
func (n *Node) Drain(ctx context.Context, timeout time.Duration) error {
	if err := n.Cordon(ctx); err != nil {
		return err
	}
	h := n.helper(ctx, timeout)
	start := time.Now()
	list, errs := h.GetPodsForDeletion(n.Name)
	if len(errs) > 0 {
		return fmt.Errorf("draining node %s: %w", n.Name, errors.Join(errs...))
	}
	if w := list.Warnings(); w != "" {
		fmt.Fprintf(h.ErrOut, "warning: %s\n", w)
	}
	err := h.DeleteOrEvictPods(list.Pods())
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("draining node %s: %w", n.Name, ctx.Err())
	}
	if time.Since(start) < timeout {
		return fmt.Errorf("draining node %s: %w", n.Name, err)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return fmt.Errorf("draining node %s: %w after %s: %s", n.Name, ErrTimeout, timeout, n.blockers(dctx, h))
}

// WaitReady waits until the node reports Ready, within timeout. since,
// when set, also asks for a heartbeat of the Ready condition after it, so
// that a node status from before a restart of k3s does not count.
func (n *Node) WaitReady(ctx context.Context, timeout time.Duration, since time.Time) error {
	poll := n.Poll
	if poll == 0 {
		poll = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "not seen yet"
	for {
		node, err := n.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err == nil {
			var ok bool
			if ok, last = ready(node, since); ok {
				return nil
			}
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("node %s not Ready: %w after %s (%s)", n.Name, ErrTimeout, timeout, last)
			}
			return fmt.Errorf("waiting for node %s: %w", n.Name, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// ready reports whether node is Ready (with a heartbeat after since), and
// otherwise what its Ready condition says.
func ready(node *corev1.Node, since time.Time) (bool, string) {
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status != corev1.ConditionTrue {
			return false, fmt.Sprintf("Ready=%s: %s %s", c.Status, c.Reason, c.Message)
		}
		if c.LastHeartbeatTime.Time.Before(since) {
			return false, fmt.Sprintf("Ready, but no heartbeat since %s (last %s)",
				since.UTC().Format(time.RFC3339), c.LastHeartbeatTime.UTC().Format(time.RFC3339))
		}
		return true, ""
	}
	return false, "no Ready condition"
}
