# routy: x86 server at home, the home-IP watcher. When the ISP changes the
# home address, the agent rewrites the Hetzner firewall in front of the exit
# node so only home (and the tailnet) may reach it.
{ config, ... }:
{
  services.avalanche-agent = {
    secrets.hcloud-token = {
      sopsFile = ../../../secrets/nixos/routy/secrets.yaml;
      key = "hcloud/token";
    };
    homeIP = {
      enable = true;
      tokenFile = config.services.avalanche-agent.secrets.hcloud-token.path;
      firewall = "avalanche-exit-node"; # created by cloud/ (Terraform)
      wanInterface = "enp1s0";
    };
  };

  system.stateVersion = "25.05";
}
