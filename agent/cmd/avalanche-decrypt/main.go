// Command avalanche-decrypt decrypts SOPS secrets for avalanche-agent.
//
// It is a short-lived helper: the agent starts it, writes a JSON request
// (identities and secrets, see pkg/secrets.HelperRequest) to its standard
// input and reads one JSON result per secret from its standard output. It
// links getsops/sops/v3 so the resident agent does not have to.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	// The host's identities and every decrypted secret are in this
	// process: the kernel writes no core dump of it and only root may read
	// its memory.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "avalanche-decrypt: making the process non-dumpable: %v\n", err)
		os.Exit(1)
	}
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "avalanche-decrypt: %v\n", err)
		os.Exit(1)
	}
}
