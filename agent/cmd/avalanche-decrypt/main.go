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
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := enrol.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		switch {
		case errors.Is(err, flag.ErrHelp):
		case errors.Is(err, enrol.ErrUsage):
			os.Exit(2)
		case err != nil:
			fmt.Fprintf(os.Stderr, "avalanche-agent %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "avalanche-decrypt: %v\n", err)
		os.Exit(1)
	}
}
