//go:build !failpoint

// Package failpoint marks the instants where the crash-consistency suite
// (bench/) stops, kills or cuts the power of the agent. Only binaries built
// with -tags failpoint act on it; in this build Hit does nothing.
package failpoint

// Hit marks the start of step name; a no-op without -tags failpoint.
func Hit(string) {}
