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

	"github.com/avalanche-fleet/avalanche/agent/internal/cli"
)

func main() {
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
