# Operator tasks for the avalanche fleet. `just --list` shows them.
# Everyday deploys need none of this: push to main and the agents do the rest.

set shell := ["bash", "-euo", "pipefail", "-c"]

version := `git describe --always --dirty 2>/dev/null || echo dev`

default:
    @just --list

# Deploy one host by hand, from this checkout (bootstrap or emergency; normally the agent does it).
# As root@ no sudo is needed; with a normal user add --sudo (called --use-remote-sudo before nixpkgs 25.05).
nix-deploy host:
    nixos-rebuild switch --flake .#{{host}} --target-host root@{{host}}.internal --use-substitutes

# Build one host's system locally without deploying it.
build host:
    nix build .#nixosConfigurations.{{host}}.config.system.build.toplevel --out-link result-{{host}}

# Build static agent binaries for both architectures into dist/.
agent-build:
    mkdir -p dist
    for arch in arm64 amd64; do \
      for cmd in avalanche-agent avalanche-decrypt avalanche-cloud; do \
        CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
          -ldflags "-s -w -X github.com/avalanche-fleet/avalanche/agent/internal/cli.Version={{version}}" \
          -o dist/$cmd-linux-$arch ./agent/cmd/$cmd; \
      done; \
    done
    ls -l dist

# Writes the inventory entry, nixos/hosts/NAME, the host's age recipient (from its SSH host key) in
# .sops.yaml and secrets/nixos/NAME/secrets.yaml, and re-wraps data keys; then commit. Needs your
# admin age key (as sops finds it) and nix-instantiate. Example:
#   ssh-keyscan -t ed25519 raccoon06.internal | just add-host raccoon06 --system aarch64-linux --hardware rpi4 --roles k3s-agent --ssh-host-key -
# Enrol a host: see docs/secrets.md.
add-host name *flags: (_host-command "add-host" name flags)

# Take a host out of the repository and of every SOPS file it could read.
remove-host name *flags: (_host-command "remove-host" name flags)

# Give a host's SOPS files to its new SSH host key (reinstall, new SD card).
rotate-host-key name *flags: (_host-command "rotate-host-key" name flags)

# The host commands run in avalanche-decrypt (it links sops), built from this checkout.
_host-command command name flags:
    @bin=$(mktemp -d) && trap 'rm -rf "$bin"' EXIT && \
      go build -o "$bin/" ./agent/cmd/avalanche-agent ./agent/cmd/avalanche-decrypt && \
      "$bin/avalanche-agent" {{command}} {{name}} --repo {{quote(justfile_directory())}} {{flags}}

# Edit a SOPS file with your own age key (recipients come from .sops.yaml).
secrets-edit file:
    sops {{file}}

# Format Go and, when nixfmt is installed, Nix.
fmt:
    gofmt -w $(git ls-files '*.go')
    if command -v nixfmt >/dev/null; then nixfmt $(git ls-files '*.nix'); else echo "nixfmt not installed; Nix files left as they are"; fi

# Run the test suite the way CI does.
test:
    bash .ci/test

# Show the agent deploying a local repository end to end (see README).
demo:
    go build -o avalanche-agent ./agent/cmd/avalanche-agent && sudo ./avalanche-agent demo
