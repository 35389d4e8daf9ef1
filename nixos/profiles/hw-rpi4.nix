# Raspberry Pi 4 (raccoon00-05, mysecrets, eagle, possum): SD card or USB SSD
# root, extlinux, and Nix builds offloaded to the Orange Pis and x86 servers.
{
  inputs,
  lib,
  inventory,
  hostsWithRole,
  ...
}:
let
  keys = import ../lib/keys.nix;
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
    buildMachines = map (name: {
      hostName = "${name}.internal";
      sshUser = "nix-remote";
      # The host key doubles as the client key: nothing else to provision.
      sshKey = "/etc/ssh/ssh_host_ed25519_key";
      protocol = "ssh-ng";
      systems =
        if inventory.${name}.system == "x86_64-linux" then
          # x86 builders emulate aarch64 (role-builder.nix): slower, used last.
          [
            "x86_64-linux"
            "aarch64-linux"
          ]
        else
          [ inventory.${name}.system ];
      speedFactor = if inventory.${name}.system == "aarch64-linux" then 4 else 1;
      maxJobs = 4;
      supportedFeatures = [
        "big-parallel"
        "nixos-test"
      ];
    }) builders;
  };

  programs.ssh.knownHosts = lib.genAttrs builders (name: {
    hostNames = [ "${name}.internal" ];
    publicKey = keys.hostKeys.${name};
  });
}
