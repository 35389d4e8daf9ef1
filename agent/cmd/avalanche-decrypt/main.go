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
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "avalanche-decrypt: %v\n", err)
		os.Exit(1)
	}
}
