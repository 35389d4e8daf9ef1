# possum: Raspberry Pi 4 with a USB disk: Garage (S3 for restic backups and
# the cluster's object storage) and the fleet binary cache (role-binary-cache).
{ config, pkgs, ... }:
let
  s = config.services.avalanche-agent.secrets;
in
{
  services.avalanche-agent.secrets.garage-env = {
    sopsFile = ../../../secrets/nixos/possum/secrets.yaml;
    key = "garage/env"; # GARAGE_RPC_SECRET, GARAGE_ADMIN_TOKEN
    restartUnits = [ "garage.service" ];
  };

  fileSystems."/srv/data" = {
    device = "/dev/disk/by-label/possum-data";
    fsType = "ext4";
    options = [ "noatime" ];
  };

  services.garage = {
    enable = true;
    package = pkgs.garage;
    environmentFile = s.garage-env.path;
    settings = {
      replication_factor = 1;
      db_engine = "sqlite";
      metadata_dir = "/var/lib/garage/meta";
      data_dir = "/srv/data/garage";
      rpc_bind_addr = "[::]:3901";
      rpc_public_addr = "possum.internal:3901";
      s3_api = {
        s3_region = "garage";
        api_bind_addr = "[::]:3900";
        root_domain = ".s3.internal";
      };
      admin.api_bind_addr = "127.0.0.1:3903";
    };
  };

  # The module runs garage as a DynamicUser and creates only /var/lib/garage;
  # a dynamic user cannot own a directory on the data disk, so garage gets a
  # static user and the directory is made for it. (systemd moves an existing
  # /var/lib/private/garage back to /var/lib/garage when DynamicUser goes off.)
  users.users.garage = {
    isSystemUser = true;
    group = "garage";
  };
  users.groups.garage = { };
  systemd.tmpfiles.rules = [ "d /srv/data/garage 0700 garage garage -" ];
  systemd.services.garage = {
    unitConfig.RequiresMountsFor = [ "/srv/data" ];
    serviceConfig = {
      DynamicUser = false;
      User = "garage";
      Group = "garage";
    };
  };

  networking.firewall.allowedTCPPorts = [
    3900
    3901
  ];

  system.stateVersion = "24.05";
}
