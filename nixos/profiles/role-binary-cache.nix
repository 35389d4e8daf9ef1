# The fleet binary cache (possum): harmonia serves possum's /nix/store over
# HTTP and signs on the fly; builders push into that store over SSH
# (role-builder.nix). Every host trusts the key in nixos/lib/keys.nix.
{
  config,
  host,
  hostsWithRole,
  ...
}:
let
  keys = import ../lib/keys.nix;
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

  networking.firewall.allowedTCPPorts = [ 5000 ];
}
