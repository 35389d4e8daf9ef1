# Remote builder for the Raspberry Pis (opi01-03, beacon, cardinal). Pis log
# in as nix-remote with their SSH host key (hw-rpi4.nix); x86 builders also
# emulate aarch64. Finished builds are pushed to the fleet cache on possum.
{
  lib,
  pkgs,
  host,
  ...
}:
let
  keys = import ../lib/keys.nix;
  pushToCache = pkgs.writeShellScript "push-to-possum" ''
    set -eu
    # OUT_PATHS is set by the Nix daemon; failures must not fail the build.
    exec ${lib.getExe pkgs.nix} copy --to ssh-ng://nix-ssh@possum.internal $OUT_PATHS || true
  '';
in
{
  users.users.nix-remote = {
    isSystemUser = true;
    group = "nix-remote";
    useDefaultShell = true;
    openssh.authorizedKeys.keys = keys.offloadClients;
  };
  users.groups.nix-remote = { };

  nix.settings = {
    trusted-users = [ "nix-remote" ];
    post-build-hook = pushToCache;
  };

  boot.binfmt.emulatedSystems = lib.optional (host.system == "x86_64-linux") "aarch64-linux";

  programs.ssh.knownHosts.possum = {
    hostNames = [ "possum.internal" ];
    publicKey = keys.hostKeys.possum;
  };
}
