// Command avalanche-decrypt decrypts SOPS secrets for avalanche-agent.
//
// It is a short-lived helper: the agent starts it, writes a JSON request
// (identities and secrets, see pkg/secrets.HelperRequest) to its standard
// input and reads one JSON result per secret from its standard output. It
// links getsops/sops/v3 so the resident agent does not have to.
//
// With arguments it runs the admin's host commands instead (add-host,
// remove-host, rotate-host-key; see agent/internal/enrol), which need sops
// too; `avalanche-agent add-host …` runs it so.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/avalanche-fleet/avalanche/agent/internal/enrol"
)

func main() {
	// The host's identities and every decrypted secret are in this
	// process: the kernel writes no core dump of it and only root may read
	// its memory.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "avalanche-decrypt: making the process non-dumpable: %v\n", err)
		os.Exit(1)
	}
	if len(os.Args) > 1 {
		os.Exit(hostCommand(os.Args[1:]))
	}
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "avalanche-decrypt: %v\n", err)
		os.Exit(1)
	}
}

// hostCommand runs one of the admin's host commands and returns the exit
// status: 2 for a usage error.
func hostCommand(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := enrol.Run(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, enrol.ErrUsage):
		return 2
	}
	fmt.Fprintf(os.Stderr, "avalanche-agent %s: %v\n", args[0], err)
	return 1
}
