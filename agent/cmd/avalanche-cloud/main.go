// Command avalanche-cloud holds what only the cloud side needs: the
// operator's Hetzner commands and the exit-node and home-IP roles. The
// agent runs it (`avalanche-agent cloud ...` execs it), so the daemon on
// every host stays free of the Tailscale and Hetzner clients.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/avalanche-fleet/avalanche/agent/internal/cloudcmd"
)

func main() {
	// Hetzner and Tailscale API tokens pass through this process: the
	// kernel writes no core dump of it and only root may read its memory.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "avalanche-cloud: making the process non-dumpable: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cloudcmd.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "avalanche-cloud: %v\n", err)
		if errors.Is(err, cloudcmd.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
