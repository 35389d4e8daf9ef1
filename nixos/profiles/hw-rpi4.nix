# Raspberry Pi 4 (raccoon00-05, mysecrets, eagle, possum): SD card or USB SSD
# root, extlinux, builder mode (the agent never evaluates here), and Nix
# builds offloaded to the Orange Pis and x86 servers.
{
  inputs,
  lib,
  inventory,
  hostsWithRole,
  ...
}:
let
  keys = import ../lib/keys.nix;
  fleetCache = import ../lib/fleet-cache.nix;
  remote = import ../lib/builders.nix { inherit inventory keys; };
  builders = hostsWithRole "builder";
in
{
  imports = [ inputs.nixos-hardware.nixosModules.raspberry-pi-4 ];

  boot.loader.grub.enable = false;
  boot.loader.generic-extlinux-compatible.enable = true;

  fileSystems."/" = {
    device = "/dev/disk/by-label/NIXOS_SD";
    fsType = "ext4";
    options = [ "noatime" ];
  };

  # SD cards wear out: no swap file, compressed RAM instead; small journal.
  zramSwap.enable = true;
  services.journald.settings.Journal.SystemMaxUse = "256M";

  # A Pi can build, but slowly: hand builds to the builders, keep one local
  # job so a deploy still completes when they are all down.
  nix = {
    distributedBuilds = true;
    settings = {
      max-jobs = 1;
      builders-use-substitutes = true;
    };
    buildMachines = remote.machines builders;
  };

  programs.ssh.knownHosts = remote.knownHosts builders;

  # Builder mode (docs/builder.md): an evaluation takes 1-2 GB and minutes of
  # CPU on a Pi. The system comes from the release builder's signed release,
  # substituted from the fleet cache (lib/fleet-cache.nix) with its key required; after
  # deploy.builderTimeout without a release the Pi evaluates after all
  # (role-k3s-agent.nix makes the k3s workers wait instead).
  services.avalanche-agent.deploy = {
    source = "builder";
    cache = {
      url = lib.mkDefault fleetCache.url;
      publicKeys = [ keys.binaryCache ];
    };
  };
}
