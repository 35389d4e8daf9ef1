# The avalanche-agent package: the daemon/CLI, its decryption helper, the
# cloud tool and the builder's S3 helper.
#
# src is only go.mod, go.sum, agent/ and pkg/ (lib.fileset in flake.nix), so
# editing a host or a profile does not rebuild the agent.
{
  lib,
  buildGoModule,
  src,
  version,
}:
buildGoModule {
  pname = "avalanche-agent";
  inherit src version;

  # go.mod says `go 1.26.6`, the lowest Go the dependencies accept
  # (tailscale.com v1.102.5 asks for it; `go mod tidy` raises a lower line
  # back to it). nixpkgs builds with GOTOOLCHAIN=local, so the pinned
  # nixpkgs' default Go must be at least that; on an older pin use
  # buildGo126Module in flake.nix instead.
  #
  # The NAR hash of `go mod vendor` for go.mod/go.sum. After changing them,
  # `go test ./modules -run TestVendorHash` prints the new line to paste here
  # (CI fails until it is pasted).
  vendorHash = "sha256-hIjv8h+n/O69Sy0g4iR1Aab1lCDwnwVK83/76D9xRJQ=";

  subPackages = [
    "agent/cmd/avalanche-agent"
    "agent/cmd/avalanche-decrypt"
    "agent/cmd/avalanche-cloud"
    # the builder's S3 client, run only for an s3:// builder.cacheURL:
    # minio-go stays out of the daemon every host runs
    "agent/cmd/avalanche-s3"
  ];

  env.CGO_ENABLED = "0";
  ldflags = [
    "-s"
    "-w"
    "-X github.com/avalanche-fleet/avalanche/agent/internal/cli.Version=${version}"
  ];

  # The tests need git, sshd and a writable Nix store; they run in CI
  # (.ci/test), not in the build sandbox.
  doCheck = false;

  meta = {
    description = "Pulls the avalanche fleet repository and switches the host to it";
    mainProgram = "avalanche-agent";
    platforms = lib.platforms.linux;
  };
}
