# k3s worker (raccoon00-05): joins the control plane on the Orange Pis.
{
  config,
  host,
  hostsWithRole,
  ...
}:
let
  first = builtins.head (hostsWithRole "k3s-server");
in
{
  services.avalanche-agent.secrets.k3s-token = {
    sopsFile = ../../secrets/nixos + "/${host.name}/secrets.yaml";
    key = "k3s/token";
    restartUnits = [ "k3s.service" ];
  };

  # Builder mode (hw-rpi4.nix): a worker next to k3s must not evaluate, even
  # when the builder is late; it keeps waiting for the release and says so.
  services.avalanche-agent.deploy.builderFallback = "wait";

  # Draining around a k3s restart or a reboot (docs/rollouts.md) needs a
  # kubeconfig allowed to cordon this node and evict its pods, and a k3s
  # agent has none: k3s writes /etc/rancher/k3s/k3s.yaml only on servers,
  # and the kubelet's own credentials may not evict. Once each raccoon's
  # secrets.yaml holds `k3s/drain-kubeconfig` (a ServiceAccount bound to the
  # ClusterRole in docs/rollouts.md), declare it as a secret, point
  # deploy.drain.kubeconfig at its path and turn this on; enabled without
  # it, every switch that restarts k3s would fail to drain and wait.
  services.avalanche-agent.deploy.drain.enable = false;

  services.k3s = {
    enable = true;
    role = "agent";
    serverAddr = "https://${first}.internal:6443";
    tokenFile = config.services.avalanche-agent.secrets.k3s-token.path;
  };

  networking.firewall = {
    allowedTCPPorts = [ 10250 ];
    allowedUDPPorts = [ 8472 ];
  };

  # marmithon's pod (kubernetes/base/apps/marmithon) runs iptables-legacy from
  # the tailscale image, without CAP_SYS_MODULE: the legacy tables and matches
  # it and tailscaled use must already be loaded, or the egress lock fails
  # (closed: the pod never starts). tun for tailscale0 (the sidecar's mknod
  # relies on CAP_MKNOD and runc's default rule for /dev/net/tun).
  boot.kernelModules = import ../lib/k3s-pod-kernel-modules.nix;
}
