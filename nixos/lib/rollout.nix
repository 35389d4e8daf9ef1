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
  # Disruption budget: at most N hosts of a group (a host's first role)
  # activate or reboot at once; 1 for any group not named. Never two of the
  # three k3s servers: etcd keeps its quorum with one of three down.
  budgets = {
    k3s-server = 1;
    k3s-agent = 2;
  };
  # The lease's claims live on this commit (the repository's first) as
  # forge statuses; a claim lives ttl after its last renewal.
  lease = {
    anchor = "f133f5aa90a0eeca9a971851b1f5b9b5acadd567";
    ttl = "15m";
  };
  # Reboot windows per wave (the agent's deploy.reboot.window, over a
  # role's default): within the servers' night (03:00-05:00), the canaries
  # reboot first and the later waves after them.
  windows = {
    "0" = "03:00-03:40";
    "1" = "03:40-04:20";
    "2" = "04:20-05:00";
  };
}
