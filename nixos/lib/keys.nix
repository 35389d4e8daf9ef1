# Public keys the fleet pins. Pure data, no secrets.
#
# Every value containing PLACEHOLDER must be replaced before the first real
# deploy; the comments say where the real value comes from. Private halves never
# live in this repository (secrets/ holds SOPS-encrypted files only).
{
  # SSH host keys, used as known_hosts entries (build offload, git over SSH)
  # and, converted with ssh-to-age, as each host's SOPS recipient.
  # Get one with: ssh-keyscan -t ed25519 <host>.internal
  # (or on the host: cat /etc/ssh/ssh_host_ed25519_key.pub)
  hostKeys = {
    eagle = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDEReagle0000000000000000000000000";
    possum = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERpossum000000000000000000000000";
    opi01 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERopi0100000000000000000000000000";
    opi02 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERopi0200000000000000000000000000";
    opi03 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERopi0300000000000000000000000000";
    beacon = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERbeacon00000000000000000000000000";
    cardinal = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERcardinal000000000000000000000000";
  };

  # The one host with the builder role of the agent (role-builder.nix,
  # docs/builder.md): it evaluates and builds every host per commit and signs
  # the releases with its SSH host key, which signers.nix lists for that.
  releaseBuilder = "cardinal";

  # Keys allowed to connect as the build user on builders: the SSH host keys
  # of the machines that offload (the Raspberry Pis), same source as above.
  # One entry is enough to show the shape; add each Pi's host key.
  offloadClients = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERraccoon00000000000000000000000 raccoon00"
  ];

  # Signing key of the fleet binary cache on possum (harmonia).
  # Generate on possum:
  #   nix-store --generate-binary-cache-key possum-1 /var/lib/harmonia/cache-priv-key.pem cache-pub-key.pem
  # put the private half into secrets/nixos/possum/secrets.yaml (key harmonia/sign-key)
  # and the content of cache-pub-key.pem here.
  binaryCache = "possum-1:PLACEHOLDER00000000000000000000000000000000=";

  # Operators' SSH keys (root and the admin user on every host).
  admins = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERadmin000000000000000000000000000 admin@calypso"
  ];
}
