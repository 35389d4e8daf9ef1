# Remote builder for the Raspberry Pis (opi01-03, beacon, cardinal). Pis log
# in as nix-remote with their SSH host key (hw-rpi4.nix); x86 builders also
# emulate aarch64. Finished builds are pushed to the fleet cache on possum.
#
# One of them, keys.releaseBuilder (cardinal), also runs the agent's builder
# role (docs/builder.md): for each verified main commit it evaluates every
# host, builds with Nix's distributed builds on the other builders, signs
# the closures with the cache key, copies them to possum and publishes the
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
  remote = import ../lib/builders.nix { inherit inventory keys; };
  releaseBuilder = host.name == keys.releaseBuilder;
  # The release builder hands builds to the other builders.
  peers = lib.optionals releaseBuilder (lib.remove host.name (hostsWithRole "builder"));

  # The daemon runs the hook as root, which has no SSH key of its own: it
  # logs in to possum's nix-ssh (role-binary-cache.nix) with this host's SSH
  # host key, the one possum lists.
  cache = "ssh-ng://nix-ssh@possum.internal?ssh-key=/etc/ssh/ssh_host_ed25519_key";

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
      post-build-hook = pushToCache;
    };
    distributedBuilds = releaseBuilder;
    buildMachines = remote.machines peers;
  };

  services.avalanche-agent = lib.mkIf releaseBuilder {
    builder = {
      enable = true;
      # What the post-build hook uses, for the same reason: root has no key.
      cacheURL = cache;
      # The cache's secret key, the one harmonia signs with on possum.
      signingKeyFile = config.services.avalanche-agent.secrets.cache-sign-key.path;
      releaseKeyFile = "/etc/ssh/ssh_host_ed25519_key";
    };
    secrets.cache-sign-key = {
      sopsFile = ../../secrets/nixos + "/${host.name}/secrets.yaml";
      key = "cache/sign-key";
    };
  };

  systemd.tmpfiles.rules = [ "d /var/lib/push-to-possum 0700 root root -" ];
  systemd.services.push-to-possum-retry = {
    description = "Upload to the fleet cache what the post-build hook could not";
    serviceConfig = {
      Type = "oneshot";
      ExecStart = "${pushToCache} --retry";
    };
  };
  systemd.timers.push-to-possum-retry = {
    wantedBy = [ "timers.target" ];
    timerConfig = {
      OnCalendar = "hourly";
      RandomizedDelaySec = "10m";
    };
  };

  boot.binfmt.emulatedSystems = lib.optional (host.system == "x86_64-linux") "aarch64-linux";

  programs.ssh.knownHosts = remote.knownHosts (peers ++ [ "possum" ]);
}
