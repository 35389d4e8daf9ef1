// Command avalanche-drain cordons and drains a k3s node, waits for it to be
// Ready and uncordons it, through the Kubernetes API (client-go and
// kubectl's drain package). avalanche-agent runs it only around a switch
// that restarts k3s or a reboot, so that the resident agent never links
// client-go.
//
//	avalanche-drain [-kubeconfig file] [-node name] [-timeout 15m] drain
//	avalanche-drain [-kubeconfig file] [-node name] [-timeout 10m] [-since time] wait-ready
//	avalanche-drain [-kubeconfig file] [-node name] uncordon
//
// Exit status 0 on success, 1 on failure (the reason is the last line of
// standard error), 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.Is(err, errUsage):
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "avalanche-drain: %v\n", err)
	os.Exit(1)
}
