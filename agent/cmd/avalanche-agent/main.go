// Command avalanche-agent keeps a NixOS host in step with the avalanche
// repository: it is both the daemon (avalanche-agent run) and its CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/avalanche-fleet/avalanche/agent/internal/cli"
)

func main() {
	// Tokens, keys and decrypted secrets pass through this process: the
	// kernel writes no core dump of it and only root may read its memory.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "avalanche-agent: making the process non-dumpable: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &cli.Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:]}
	if err := m.Execute(ctx); err != nil {
		var exit cli.ExitError
		switch {
		case errors.As(err, &exit):
			os.Exit(exit.Code)
		case errors.Is(err, cli.ErrUsage):
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "avalanche-agent: %v\n", err)
		os.Exit(1)
	}
}
