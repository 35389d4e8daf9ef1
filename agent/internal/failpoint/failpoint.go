//go:build failpoint

// Package failpoint marks the instants where the crash-consistency suite
// (bench/) stops, kills or cuts the power of the agent. Only binaries built
// with -tags failpoint contain it: there, each point writes
// "failpoint: <name> <unix nanoseconds>" to stderr and then waits AVALANCHE_FAILPOINT_DELAY
// (a Go duration) so that an injection can land inside the step, before
// and during its work. In every other build Hit is an empty function.
package failpoint

import (
	"fmt"
	"os"
	"time"
)

var delay, _ = time.ParseDuration(os.Getenv("AVALANCHE_FAILPOINT_DELAY"))

// Hit marks the start of step name.
func Hit(name string) {
	fmt.Fprintf(os.Stderr, "failpoint: %s %d\n", name, time.Now().UnixNano())
	time.Sleep(delay)
}
