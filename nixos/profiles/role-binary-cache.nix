# The fleet binary cache (possum): harmonia serves possum's /nix/store over
# HTTP and signs on the fly; builders push into that store over SSH
# (role-builder.nix). Every host trusts the key in nixos/lib/keys.nix.
{ config, host, ... }:
let
  keys = import ../lib/keys.nix;
in
{
  services.avalanche-agent.secrets.harmonia-sign-key = {
    sopsFile = ../../secrets/nixos + "/${host.name}/secrets.yaml";
    key = "harmonia/sign-key";
    owner = "harmonia";
    restartUnits = [ "harmonia.service" ];
  };

  services.harmonia = {
    enable = true;
    signKeyPaths = [ config.services.avalanche-agent.secrets.harmonia-sign-key.path ];
    settings.bind = "[::]:5000";
  };

  # Builders upload with `nix copy --to ssh-ng://nix-ssh@possum.internal`.
  nix.sshServe = {
    enable = true;
    write = true;
    protocol = "ssh-ng";
    keys = [
      keys.hostKeys.opi01
      keys.hostKeys.opi02
      keys.hostKeys.opi03
      keys.hostKeys.beacon
      keys.hostKeys.cardinal
    ];
  };

  networking.firewall.allowedTCPPorts = [ 5000 ];
}
