# avalanche-drain: the helper avalanche-agent runs to cordon, drain and
# uncordon a k3s node (agent/drain). Its own Go module and derivation, so
# client-go never enters the agent's module, vendorHash or binary.
#
# src is agent/drain plus kubernetes/check's go.mod, go.sum and kubetest/
# (lib.fileset in flake.nix): the module's tests use that control-plane
# harness through a `replace ../../kubernetes/check`, and `go mod vendor`
# copies the packages the tests import too.
{
  lib,
  buildGoModule,
  src,
  version,
}:
buildGoModule {
  pname = "avalanche-drain";
  inherit src version;
  modRoot = "agent/drain";

  # go.mod says `go 1.26.8` (kubernetes/check's line). The NAR hash of `go
  # mod vendor` in agent/drain; after changing its go.mod/go.sum, `go test
  # ./modules -run TestVendorHash` prints the new line to paste here.
  vendorHash = "sha256-+4jnlvnJ3J2CmXWiCMCT3CH4KSAI7AtaHr4xnaywUZc=";

  subPackages = [ "cmd/avalanche-drain" ];

  env.CGO_ENABLED = "0";
  ldflags = [
    "-s"
    "-w"
  ];

  # The tests need a control plane (etcd, kube-apiserver, kwok); they run in
  # CI (.ci/test), not in the build sandbox.
  doCheck = false;

  meta = {
    description = "Cordons, drains (eviction API, PodDisruptionBudgets) and uncordons a k3s node for avalanche-agent";
    mainProgram = "avalanche-drain";
    platforms = lib.platforms.linux;
  };
}
