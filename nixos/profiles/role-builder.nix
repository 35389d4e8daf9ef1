# Remote builder for the Raspberry Pis (opi01-03, beacon, cardinal). Pis log
# in as nix-remote with their SSH host key (hw-rpi4.nix); x86 builders also
# emulate aarch64. With the fleet cache on harmonia (lib/fleet-cache.nix),
# finished builds are pushed into possum's store.
#
# One of them, keys.releaseBuilder (cardinal), also runs the agent's builder
# role (docs/builder.md): for each verified main commit it evaluates every
# host, builds with Nix's distributed builds on the other builders, signs
# the closures with the cache key, copies them to the fleet cache (possum's
# store, or its Garage bucket: lib/fleet-cache.nix) and publishes the
# release, signed with its SSH host key. Its Forgejo deploy key needs write
# access (it pushes the avalanche/releases branch).
{
  config,
  lib,
  pkgs,
  host,
  inventory,
  hostsWithRole,
  ...
}:
let
  keys = import ../lib/keys.nix;
  fleetCache = import ../lib/fleet-cache.nix;
  remote = import ../lib/builders.nix { inherit inventory keys; };
  releaseBuilder = host.name == keys.releaseBuilder;
  # The release builder hands builds to the other builders.
  peers = lib.optionals releaseBuilder (lib.remove host.name (hostsWithRole "builder"));

  # The daemon runs the hook as root, which has no SSH key of its own: it
  # logs in to possum's nix-ssh (role-binary-cache.nix) with this host's SSH
  # host key, the one possum lists.
  cache = "ssh-ng://nix-ssh@possum.internal?ssh-key=/etc/ssh/ssh_host_ed25519_key";

  # The post-build hook exists for harmonia only. With Garage the release
  # builder uploads every closure whole (and checks the bucket holds it)
  # before it publishes, which is all the hosts read; the hook's paths are
  # unsigned (harmonia signs on the fly, a bucket cannot), so hosts would
  # refuse them, and it would need the bucket's keys on every builder.
  pushHook = !fleetCache.garage;

  # push-to-possum: the post-build hook (new paths in OUT_PATHS), or with
  # --retry the hourly retry of what the hook could not upload.
  #
  # Nix stops its build loop when the hook fails, so the hook always exits
  # 0: a failed upload (possum down, network) only queues the paths. Until
  # the retry uploads them they exist on this builder alone; hosts that miss
  # them in the cache build them again (or offload them here, where they are
  # still valid). See docs/migration/README.md.
  pushToCache = pkgs.writeShellScript "push-to-possum" ''
    set -u
    export PATH=${
      lib.makeBinPath [
        pkgs.coreutils
        pkgs.openssh
        pkgs.util-linux
      ]
    }:$PATH
    export NIX_SSHOPTS="-o ConnectTimeout=10 -o BatchMode=yes"
    queue=''${PUSH_TO_POSSUM_QUEUE:-/var/lib/push-to-possum/queue}

    upload() {
      timeout 900 ${lib.getExe pkgs.nix} copy --to '${cache}' "$@"
    }

    if [ "''${1:-}" != --retry ]; then
      # shellcheck disable=SC2086 # OUT_PATHS is a space-separated list
      if ! upload $OUT_PATHS; then
        printf '%s\n' $OUT_PATHS >>"$queue"
        logger -t push-to-possum "upload to ${cache} failed; queued $OUT_PATHS"
      fi
      exit 0
    fi

    [ -s "$queue" ] || exit 0
    work="$queue.$$"
    mv "$queue" "$work"
    # Paths collected since they were queued are gone for good: skip them.
    mapfile -t paths < <(sort -u "$work" | while read -r p; do [ -e "$p" ] && echo "$p"; done)
    if [ ''${#paths[@]} -gt 0 ] && ! upload "''${paths[@]}"; then
      cat "$work" >>"$queue"
      rm -f "$work"
      echo "upload to ${cache} failed; ''${#paths[@]} paths stay queued in $queue" >&2
      exit 1
    fi
    rm -f "$work"
  '';
in
{
  users.users.nix-remote = {
    isSystemUser = true;
    group = "nix-remote";
    useDefaultShell = true;
    # The Pis, and the release builder offloading its builds here.
    openssh.authorizedKeys.keys =
      keys.offloadClients ++ lib.optional (!releaseBuilder) keys.hostKeys.${keys.releaseBuilder};
  };
  users.groups.nix-remote = { };

  nix = {
    settings = {
      trusted-users = [ "nix-remote" ];
      post-build-hook = lib.mkIf pushHook pushToCache;
    };
    distributedBuilds = releaseBuilder;
    buildMachines = remote.machines peers;
  };

  services.avalanche-agent = lib.mkIf releaseBuilder {
    builder = {
      enable = true;
      # possum's store over ssh-ng, or its Garage bucket (lib/fleet-cache.nix).
      cacheURL = fleetCache.builderURL;
      # The bucket's keys (AWS credentials format), for Garage only.
      cacheCredentialsFile = lib.mkIf fleetCache.garage config.services.avalanche-agent.secrets.cache-s3-credentials.path;
      # The cache's secret key, the one harmonia signs with on possum.
      signingKeyFile = config.services.avalanche-agent.secrets.cache-sign-key.path;
      releaseKeyFile = "/etc/ssh/ssh_host_ed25519_key";
    };
    secrets = {
      cache-sign-key = {
        sopsFile = ../../secrets/nixos + "/${host.name}/secrets.yaml";
        key = "cache/sign-key";
      };
      # possum's garage/fleet-cache-key, as [default] aws_access_key_id = GK…,
      # aws_secret_access_key = … (docs/builder.md).
      cache-s3-credentials = lib.mkIf fleetCache.garage {
        sopsFile = ../../secrets/nixos + "/${host.name}/secrets.yaml";
        key = "cache/s3-credentials";
      };
    };
  };

  systemd.tmpfiles.rules = lib.mkIf pushHook [ "d /var/lib/push-to-possum 0700 root root -" ];
  systemd.services.push-to-possum-retry = lib.mkIf pushHook {
    description = "Upload to the fleet cache what the post-build hook could not";
    serviceConfig = {
      Type = "oneshot";
      ExecStart = "${pushToCache} --retry";
    };
  };
  systemd.timers.push-to-possum-retry = lib.mkIf pushHook {
    wantedBy = [ "timers.target" ];
    timerConfig = {
      OnCalendar = "hourly";
      RandomizedDelaySec = "10m";
    };
  };

  boot.binfmt.emulatedSystems = lib.optional (host.system == "x86_64-linux") "aarch64-linux";

  programs.ssh.knownHosts = remote.knownHosts (peers ++ [ "possum" ]);
}
