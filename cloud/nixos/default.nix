# exit-node: the Hetzner Cloud CPX11 VPS (hw-hetzner-cloud, role-exit-node).
# The machine itself is created by Terraform elsewhere in cloud/; this is its
# NixOS configuration, deployed by the same agent as every other host.
#
# The tailnet exit node is advertised by the agent and by nothing else: see
# nixos/profiles/role-exit-node.nix (no services.tailscale.extraUpFlags, no
# `tailscale up` in scripts).
{ lib, pkgs, ... }:
let
  keys = import ../../nixos/lib/keys.nix;
  fleetCache = import ../../nixos/lib/fleet-cache.nix;
in
{
  # Also set by mkNixosConfig from the inventory; said here so tools that
  # only read this directory (`avalanche-agent fleet` without nix) see it.
  networking.hostName = "exit-node";

  # The VPS is not on the home LAN: it reaches eagle through the tailnet.
  # PLACEHOLDER: replace "tailnet-name" with your tailnet's MagicDNS suffix
  # (tailscale admin console -> DNS).
  services.avalanche-agent.repository = {
    url = "forgejo@eagle.tailnet-name.ts.net:fleet/avalanche.git";
    knownHostsFile = "${pkgs.writeText "eagle-known-hosts" ''
      eagle.tailnet-name.ts.net ${keys.hostKeys.eagle}
    ''}";
  };

  # The fleet cache on possum is only reachable over the tailnet too; replace
  # global.nix's LAN address (mkForce drops it) and keep the public cache.
  # PLACEHOLDER: the tailnet name is in nixos/lib/fleet-cache.nix.
  nix.settings.substituters = lib.mkForce [
    fleetCache.tailnetUrl
    "https://cache.nixos.org/"
  ];

  # Builder mode (docs/builder.md): with 2 GB the VPS does not evaluate its
  # own system; it substitutes the release builder's from the fleet cache.
  services.avalanche-agent.deploy = {
    source = "builder";
    cache = {
      url = fleetCache.tailnetUrl;
      publicKeys = [ keys.binaryCache ];
    };
  };

  # The IPv6 address Hetzner assigns to this server (console -> Networking).
  # PLACEHOLDER: replace with the server's /64.
  networking.interfaces.enp1s0.ipv6.addresses = [
    {
      address = "2a01:4f8:c0c:0::1";
      prefixLength = 64;
    }
  ];
  networking.defaultGateway6 = {
    address = "fe80::1";
    interface = "enp1s0";
  };

  system.stateVersion = "25.05";
}
