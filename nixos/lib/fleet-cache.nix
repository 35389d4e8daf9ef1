# The fleet binary cache: ONE switch for every host (docs/builder.md
# "Switching the fleet cache"). Pure: the profiles, possum and the exit node
# import it, so the release builder, the hosts and possum always agree.
#
#   "harmonia": possum's harmonia serves possum's /nix/store on :5000; the
#               builders push into that store over ssh-ng (role-builder.nix's
#               post-build hook, and the release builder's closures).
#   "garage":   the release builder uploads every closure to possum's Garage
#               bucket (S3, the `avalanche-s3` helper, secret
#               cache/s3-credentials on the release builder); hosts read the
#               bucket anonymously from Garage's web endpoint on :3902.
#               Possum needs the secret garage/fleet-cache-key.
#
# Stay on "harmonia" until both secrets are in the SOPS files: a host whose
# commit names a secret its file lacks refuses that commit.
let
  backend = "harmonia";

  bucket = "fleet-cache";
  # The exit node reaches possum over the tailnet only (cloud/nixos).
  # PLACEHOLDER: replace "tailnet-name" with your tailnet's MagicDNS suffix,
  # as in cloud/nixos/default.nix.
  tailnetHost = "possum.tailnet-name.ts.net";

  garage = backend == "garage";
in
if !builtins.elem backend [
  "harmonia"
  "garage"
] then
  throw "nixos/lib/fleet-cache.nix: backend = \"${backend}\"; want \"harmonia\" or \"garage\""
else
  {
    inherit
      backend
      garage
      bucket
      tailnetHost
      ;

    # What every host's Nix and the hosts in builder mode substitute from, on
    # the LAN: Garage's web endpoint answers for the bucket by name
    # (root_domain ".web.internal", a CNAME to possum in mysecrets' zone).
    url = if garage then "http://${bucket}.web.internal:3902" else "http://possum.internal:5000";

    # The same for the exit node, over the tailnet. Garage's web endpoint takes
    # a Host outside its root_domain as the bucket's name, so possum gives the
    # bucket that alias (nixos/hosts/possum).
    tailnetUrl = if garage then "http://${tailnetHost}:3902" else "http://${tailnetHost}:5000";

    # Where the release builder copies every closure (builder.cacheURL). Over
    # ssh-ng root logs in to possum's nix-ssh with the host's SSH host key:
    # root has no key of its own.
    builderURL =
      if garage then
        "s3://${bucket}?endpoint=possum.internal:3900&region=garage&scheme=http"
      else
        "ssh-ng://nix-ssh@possum.internal?ssh-key=/etc/ssh/ssh_host_ed25519_key";
  }
