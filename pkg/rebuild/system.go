package rebuild

import "runtime"

// System returns the Nix system of the machine the program runs on, e.g.
// aarch64-linux: what a host's toplevel must be built for.
func System() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-" + runtime.GOOS
}
