# The fleet's rollout policy (docs/rollouts.md), turned into each host's wave
# by waves.nix. Pure data.
{
  # Off until every host has report.forge (a forge token that may read and
  # write commit statuses): the gate reads the earlier waves' statuses there.
  enable = false;
  soak = "15m";
  # The canary of a group (a host's first role) when it is not the group's
  # first host by name.
  canaries = [ ];
  # The k3s workers follow the control plane: opi01 and raccoon00 are
  # canaries (wave 0), opi02-03 wave 1, raccoon01-05 wave 2.
  after.k3s-agent = [ "k3s-server" ];
  # eagle serves the repository and the forge the gate reads: last.
  hosts.eagle = 2;
}
