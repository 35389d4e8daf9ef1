package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/avalanche-fleet/avalanche/agent/drain"
)

// DefaultKubeconfig is where k3s writes its admin kubeconfig on NixOS.
const DefaultKubeconfig = "/etc/rancher/k3s/k3s.yaml"

// errUsage marks a command line that cannot be run; the message says why.
var errUsage = errors.New("usage")

// run parses args and runs one command; progress goes to log.
func run(ctx context.Context, args []string, log io.Writer) error {
	fs := flag.NewFlagSet("avalanche-drain", flag.ContinueOnError)
	fs.SetOutput(log)
	kubeconfig := fs.String("kubeconfig", DefaultKubeconfig, "kubeconfig `file` (k3s's admin kubeconfig)")
	node := fs.String("node", "", "node `name` (default: the host name, as k3s names its node)")
	timeout := fs.Duration("timeout", 15*time.Minute, "how long drain or wait-ready may take")
	since := fs.String("since", "", "wait-ready: want a heartbeat after this RFC 3339 `time`")
	fs.Usage = func() {
		fmt.Fprintln(log, "usage: avalanche-drain [flags] drain|wait-ready|uncordon")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want one command (drain, wait-ready, uncordon), got %q", errUsage, fs.Args())
	}
	var after time.Time
	if *since != "" {
		t, err := time.Parse(time.RFC3339Nano, *since)
		if err != nil {
			return fmt.Errorf("%w: -since: %w", errUsage, err)
		}
		after = t
	}
	n, err := newNode(*kubeconfig, *node, log)
	if err != nil {
		return err
	}
	switch cmd := fs.Arg(0); cmd {
	case "drain":
		return n.Drain(ctx, *timeout)
	case "wait-ready":
		return n.WaitReady(ctx, *timeout, after)
	case "uncordon":
		return n.Uncordon(ctx)
	default:
		return fmt.Errorf("%w: unknown command %q (want drain, wait-ready or uncordon)", errUsage, cmd)
	}
}

// newNode connects to the API server that kubeconfig names.
func newNode(kubeconfig, name string, log io.Writer) (*drain.Node, error) {
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("finding the node name: %w", err)
		}
		name = h
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.Timeout = 30 * time.Second // one request; the command's own timeout bounds the whole
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return &drain.Node{Client: client, Name: name, Log: log}, nil
}
