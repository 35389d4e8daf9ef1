# k3s control plane (opi01-03). The first server in the inventory initialises
# the embedded etcd cluster; the others join it. ArgoCD (kubernetes/) owns
# everything that runs inside the cluster.
{
  lib,
  config,
  host,
  hostsWithRole,
  ...
}:
let
  servers = hostsWithRole "k3s-server";
  first = builtins.head servers;
in
{
  services.avalanche-agent.secrets.k3s-token = {
    sopsFile = ../../secrets/nixos + "/${host.name}/secrets.yaml";
    key = "k3s/token";
    restartUnits = [ "k3s.service" ];
  };

  # A switch that restarts k3s, and a reboot, first cordon and drain this
  # node through the API (docs/rollouts.md), with the admin kubeconfig k3s
  # writes on servers (/etc/rancher/k3s/k3s.yaml, the option's default).
  services.avalanche-agent.deploy.drain.enable = true;

  services.k3s = {
    enable = true;
    role = "server";
    tokenFile = config.services.avalanche-agent.secrets.k3s-token.path;
    clusterInit = host.name == first;
    serverAddr = lib.mkIf (host.name != first) "https://${first}.internal:6443";
    extraFlags = [
      "--disable=traefik"
      "--disable=servicelb"
      "--tls-san=k3s.internal"
      "--write-kubeconfig-mode=0640"
    ];
  };

  networking.firewall = {
    allowedTCPPorts = [
      6443 # API server
      2379 # etcd clients
      2380 # etcd peers
      10250 # kubelet
    ];
    allowedUDPPorts = [ 8472 ]; # flannel VXLAN
  };

  # marmithon's pod (kubernetes/base/apps/marmithon) runs iptables-legacy from
  # the tailscale image, without CAP_SYS_MODULE: the legacy tables and matches
  # it and tailscaled use must already be loaded, or the egress lock fails
  # (closed: the pod never starts). tun for tailscale0 (the sidecar's mknod
  # relies on CAP_MKNOD and runc's default rule for /dev/net/tun).
  boot.kernelModules = import ../lib/k3s-pod-kernel-modules.nix;
}
