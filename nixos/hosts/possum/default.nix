# possum: Raspberry Pi 4 with a USB disk: Garage (S3 for restic backups and
# the cluster's object storage) and the fleet binary cache (role-binary-cache).
{ config, pkgs, lib, ... }:
let
  s = config.services.avalanche-agent.secrets;
  fleetCache = import ../../lib/fleet-cache.nix;

  # The fleet cache in Garage (docs/builder.md "The fleet cache on S3"), set
  # up only when lib/fleet-cache.nix says "garage", so a fleet on harmonia
  # never needs the secret below: the release builder uploads with that key,
  # hosts read the bucket anonymously from Garage's web endpoint at
  # http://fleet-cache.web.internal:3902 (a plain Nix HTTP cache; the narinfo
  # signatures carry the trust), the exit node as fleetCache.tailnetHost.
  cacheBucket = fleetCache.bucket;
  # Objects older than this expire; the builder uploads again, at its next
  # release, whatever a current system lost (docs/builder.md, retention).
  cacheRetentionDays = 90;
  lifecycle = builtins.toJSON {
    Rules = [
      {
        ID = "retention";
        Status = "Enabled";
        Filter.Prefix = "";
        Expiration.Days = cacheRetentionDays;
        AbortIncompleteMultipartUpload.DaysAfterInitiation = 1;
      }
    ];
  };
  # Idempotent: the bucket, the builder's key (imported from the secret, so
  # the key the builder holds is the one Garage knows), its read/write grant,
  # web access, the tailnet alias, and the retention rule.
  cacheSetup = pkgs.writeShellScript "garage-fleet-cache" ''
    set -eu
    export PATH=${
      lib.makeBinPath [
        pkgs.garage
        pkgs.awscli2
      ]
    }:$PATH
    # GARAGE_KEY_ID, GARAGE_KEY_SECRET
    . ${s.garage-fleet-cache-key.path}
    garage bucket info ${cacheBucket} >/dev/null 2>&1 || garage bucket create ${cacheBucket}
    garage key info "$GARAGE_KEY_ID" >/dev/null 2>&1 ||
      garage key import --yes -n fleet-cache-builder "$GARAGE_KEY_ID" "$GARAGE_KEY_SECRET"
    garage bucket allow --read --write ${cacheBucket} --key "$GARAGE_KEY_ID"
    garage bucket website --allow ${cacheBucket}
    garage bucket info ${fleetCache.tailnetHost} >/dev/null 2>&1 ||
      garage bucket alias ${cacheBucket} ${fleetCache.tailnetHost}
    AWS_ACCESS_KEY_ID=$GARAGE_KEY_ID AWS_SECRET_ACCESS_KEY=$GARAGE_KEY_SECRET AWS_DEFAULT_REGION=garage \
      aws --endpoint-url http://127.0.0.1:3900 s3api put-bucket-lifecycle-configuration \
        --bucket ${cacheBucket} --lifecycle-configuration '${lifecycle}'
  '';
in
{
  services.avalanche-agent.secrets.garage-env = {
    sopsFile = ../../../secrets/nixos/possum/secrets.yaml;
    key = "garage/env"; # GARAGE_RPC_SECRET, GARAGE_ADMIN_TOKEN
    restartUnits = [ "garage.service" ];
  };

  # The release builder's key to the fleet cache bucket: the id and secret
  # the builder holds as cache/s3-credentials (docs/builder.md), here as
  # shell assignments.
  services.avalanche-agent.secrets.garage-fleet-cache-key = lib.mkIf fleetCache.garage {
    sopsFile = ../../../secrets/nixos/possum/secrets.yaml;
    key = "garage/fleet-cache-key"; # GARAGE_KEY_ID=GK…, GARAGE_KEY_SECRET=…
    restartUnits = [ "garage-fleet-cache.service" ];
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
      # Anonymous read-only HTTP for buckets with web access: the fleet
      # cache as fleet-cache.web.internal (a CNAME to possum).
      s3_web = {
        bind_addr = "[::]:3902";
        root_domain = ".web.internal";
        index = "index.html";
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

  systemd.services.garage-fleet-cache = lib.mkIf fleetCache.garage {
    description = "Garage: the fleet cache bucket, its key, web access and retention";
    after = [ "garage.service" ];
    requires = [ "garage.service" ];
    wantedBy = [ "multi-user.target" ];
    environment.GARAGE_CONFIG_FILE = "/etc/garage.toml";
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      EnvironmentFile = s.garage-env.path; # the admin's RPC secret
      ExecStart = cacheSetup;
      Restart = "on-failure";
      RestartSec = "30s";
    };
  };

  networking.firewall.allowedTCPPorts = [
    3900
    3901
  ]
  ++ lib.optional fleetCache.garage 3902; # the fleet cache, read-only (s3_web)

  system.stateVersion = "24.05";
}
