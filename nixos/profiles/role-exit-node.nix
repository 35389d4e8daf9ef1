# The fleet's Tailscale exit node (the Hetzner VPS): marmithon and friends
# reach the internet through it, never through the home IP.
#
# Exactly ONE owner advertises the exit node: the agent (exitNode.enable). It
# runs the equivalent of `tailscale up --advertise-exit-node` through the local
# API and approves the route with the API key. Do NOT also put
# --advertise-exit-node into services.tailscale.extraUpFlags or run
# `tailscale up` by hand: two owners fight, and every `tailscale up` without
# the flag silently withdraws it.
{ config, host, ... }:
let
  secret = key: {
    sopsFile = ../../secrets/cloud + "/${host.name}/secrets.yaml";
    inherit key;
  };
  secrets = config.services.avalanche-agent.secrets;
in
{
  services.avalanche-agent = {
    secrets = {
      tailscale-auth-key = secret "tailscale/auth-key";
      tailscale-api-key = secret "tailscale/api-key";
    };
    exitNode = {
      enable = true;
      authKeyFile = secrets.tailscale-auth-key.path;
      apiKeyFile = secrets.tailscale-api-key.path;
    };
  };

  services.tailscale = {
    enable = true;
    # IP forwarding and loose reverse-path filtering for an exit node.
    useRoutingFeatures = "server";
    # No authKeyFile and no extraUpFlags here: the agent owns `up`.
  };

  networking.firewall = {
    enable = true;
    trustedInterfaces = [ config.services.tailscale.interfaceName ];
    allowedUDPPorts = [ config.services.tailscale.port ];
  };
}
