# The fleet binary cache (possum): harmonia serves possum's /nix/store over
# HTTP and signs on the fly; builders push into that store over SSH
# (role-builder.nix). Every host trusts the key in nixos/lib/keys.nix.
#
# With the fleet cache on Garage (nixos/lib/fleet-cache.nix) this stays as
# it is: nothing pushes here any more, but a host that has not yet deployed
# the switch still substitutes from :5000, and the operator can copy a
# release's closure here for it by hand (docs/builder.md "Switching the
# fleet cache"). Dropping it is a later commit.
{
  config,
  lib,
  pkgs,
  host,
  hostsWithRole,
  ...
}:
let
  keys = import ../lib/keys.nix;

  # Paths the builders push are rooted by nothing here, so nix-gc would
  # delete them and hosts would find their released systems missing. Before
  # every collection, fleet-cache-roots roots the systems named by the
  # releases of the last `retentionDays` days, and always by the newest one,
  # read from this host's own agent copy of the repository (it is in
  # builder mode and fetches the release branch). Retention: docs/builder.md.
  retentionDays = 30;
  roots = "/nix/var/nix/gcroots/fleet-cache";
  rootReleases = pkgs.writeShellScript "fleet-cache-roots" ''
    set -eu
    export PATH=${
      lib.makeBinPath [
        pkgs.coreutils
        pkgs.git
        pkgs.jq
      ]
    }:$PATH
    repo=/var/lib/avalanche-agent/repo.git # render.nix: stateDir
    branch=refs/heads/avalanche/releases
    git --git-dir="$repo" rev-parse -q --verify "$branch" >/dev/null || exit 0
    since=$(( $(date +%s) - ${toString retentionDays} * 86400 ))
    new=$(mktemp -d ${roots}.new.XXXXXX)
    git --git-dir="$repo" log --first-parent --format='%H %ct' "$branch" | {
      newest=1
      while read -r commit time; do
        [ "$newest" = 1 ] || [ "$time" -ge "$since" ] || break
        newest=0
        git --git-dir="$repo" show "$commit:release.json" | jq -r '.hosts[]?.outPath // empty'
      done
    } | sort -u | while read -r path; do
      if [ -e "$path" ]; then ln -sfn "$path" "$new/''${path#/nix/store/}"; fi
    done
    rm -rf ${roots}.old
    if [ -e ${roots} ]; then mv ${roots} ${roots}.old; fi
    mv "$new" ${roots}
    rm -rf ${roots}.old
  '';
in
{
  # Owned by root: harmonia runs with a dynamic user that exists only while
  # the service runs, and systemd hands it the key (LoadCredential, read as
  # root) whatever the file's owner.
  services.avalanche-agent.secrets.harmonia-sign-key = {
    sopsFile = ../../secrets/nixos + "/${host.name}/secrets.yaml";
    key = "harmonia/sign-key";
    restartUnits = [ "harmonia.service" ];
  };

  services.harmonia.cache = {
    enable = true;
    signKeyPaths = [ config.services.avalanche-agent.secrets.harmonia-sign-key.path ];
    settings.bind = "[::]:5000";
  };

  # Builders upload with `nix copy --to ssh-ng://nix-ssh@possum.internal`
  # (role-builder.nix). Over ssh-ng the session is a `nix-daemon --stdio`
  # that ignores `write`; it accepts the builders' unsigned paths only from
  # a trusted user. The keys below are the builders' host keys, and the
  # login can do nothing but speak the daemon protocol (ForceCommand).
  nix.sshServe = {
    enable = true;
    protocol = "ssh-ng";
    trusted = true;
    keys = map (name: keys.hostKeys.${name}) (hostsWithRole "builder");
  };

  systemd.services.fleet-cache-roots = {
    description = "Root the systems of the fleet's recent releases in possum's store";
    serviceConfig = {
      Type = "oneshot";
      ExecStart = rootReleases;
    };
  };
  # Never collect with stale roots: a failed refresh stops the collection.
  systemd.services.nix-gc = {
    requires = [ "fleet-cache-roots.service" ];
    after = [ "fleet-cache-roots.service" ];
  };

  networking.firewall.allowedTCPPorts = [ 5000 ];
}
