// Package bench measures the avalanche agent and checks how it survives
// faults: Go benchmarks and a reliability suite that run the real
// avalanche-agent binary against a real git HTTP server and real nix.
// It holds no library code; bench/run runs everything and prints a table.
package bench
