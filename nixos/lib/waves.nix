# waves: the inventory and a rollout policy (rollout.nix) -> { waves; soak; }
# where waves maps every host to its rollout wave (docs/rollouts.md).
#
# A host's group is its first role. By default each group's first host by
# name is its canary (wave 0) and the rest of the group is wave 1. The
# policy changes that with:
#   canaries = [ host … ];        # the canary of each listed host's group
#   after.<role> = [ role … ];    # the rest of <role> goes one wave after
#                                 # the rest of those roles
#   roles.<role> = wave;          # the rest of <role> goes in that wave
#   hosts.<host> = wave;          # a host's own wave, over everything else
#   soak = "15m";                 # a Go duration
#   budgets.<role> = N;           # disruption budget: at most N hosts of the
#                                 # group activate or reboot at once (default 1)
#   windows.<wave> = "HH:MM-HH:MM"; # that wave's reboot window
#   lease = { anchor; ttl; };     # where the budget's lease lives
# The result also has groups (host -> group), budgets (every group -> N)
# and windows (host -> its wave's reboot window, for the waves given one).
# Bad input throws an error that starts with the policy key: a host named
# twice, a cycle in after, an unknown host or role, a negative wave or soak,
# a budget below 1, a window of a wave no host is in.
#
# Pure (builtins only): modules/rollout_test.go evaluates it with
# nix-instantiate, for the fleet's policy and for each kind of bad input.
{ inventory, policy }:
let
  inherit (builtins)
    attrNames
    concatStringsSep
    elem
    filter
    foldl'
    head
    isInt
    length
    listToAttrs
    match
    throw
    ;
  hosts = attrNames inventory;
  groupOf = h: head inventory.${h}.roles;
  roles = foldl' (acc: h: if elem (groupOf h) acc then acc else acc ++ [ (groupOf h) ]) [ ] hosts;
  fail = key: msg: throw "rollout.${key}: ${msg}";
  knownHost = key: h: if inventory ? ${h} then h else fail key "unknown host \"${h}\" (hosts: ${concatStringsSep ", " hosts})";
  knownRole = key: r: if elem r roles then r else fail key "unknown role \"${r}\" (a host's group is its first role: ${concatStringsSep ", " roles})";

  canaryList = policy.canaries or [ ];
  fixed = policy.hosts or { };
  after = policy.after or { };
  roleWaves = policy.roles or { };
  soak = policy.soak or "15m";

  # Each host at most once among canaries and hosts.
  named =
    foldl'
      (
        seen: n:
        if elem n.host seen.hosts then
          fail n.key "${n.host} is named twice (also in ${seen.where.${n.host}})"
        else
          {
            hosts = seen.hosts ++ [ n.host ];
            where = seen.where // { ${n.host} = n.key; };
          }
      )
      {
        hosts = [ ];
        where = { };
      }
      (
        map (h: {
          host = knownHost "canaries" h;
          key = "canaries";
        }) canaryList
        ++ map (h: {
          host = knownHost "hosts.${h}" h;
          key = "hosts.${h}";
        }) (attrNames fixed)
      );

  # A group's canary: the one listed, else its first host by name.
  listedCanary =
    role:
    let
      l = filter (h: groupOf h == role) canaryList;
    in
    if length l > 1 then
      fail "canaries" "${concatStringsSep " and " l} are both canaries of ${role}: one per role"
    else if l != [ ] then
      head l
    else
      head (filter (h: groupOf h == role) hosts);

  # level role: the wave of the rest of role; a cycle in after throws.
  level =
    path: role:
    let
      deps = map (knownRole "after.${role}") (after.${role} or [ ]);
    in
    if elem role path then
      fail "after" "cycle ${concatStringsSep " -> " (path ++ [ role ])}"
    else if roleWaves ? ${role} then
      roleWave role
    else
      foldl' (m: r: let l = level (path ++ [ role ]) r + 1; in if l > m then l else m) 1 deps;

  roleWave =
    role:
    let
      w = roleWaves.${role};
    in
    if after ? ${role} then
      fail "roles.${role}" "${role} is named twice (also in after.${role}): give its wave or what it follows"
    else if !(isInt w) || w < 1 then
      fail "roles.${role}" "${toString w} is not a wave after the canaries (1, 2 …)"
    else
      w;

  checkedAfter = map (r: knownRole "after" r) (attrNames after) ++ map (r: knownRole "roles" r) (attrNames roleWaves);

  waveOf =
    h:
    if fixed ? ${h} then
      (if !(isInt fixed.${h}) || fixed.${h} < 0 then fail "hosts.${h}" "${toString fixed.${h}} is not a wave (0, 1, 2 …)" else fixed.${h})
    else if listedCanary (groupOf h) == h then
      0
    else
      level [ ] (groupOf h);

  budgetPolicy = policy.budgets or { };
  budgets = listToAttrs (
    map (r: {
      name = r;
      value = budgetPolicy.${r} or 1;
    }) roles
  );
  checkedBudgets = map (
    r:
    let
      n = budgetPolicy.${knownGroup "budgets" r};
    in
    if !(isInt n) || n < 1 then
      fail "budgets.${r}" "${toString n} is not a budget (at least 1 host of the group at a time)"
    else
      n
  ) (attrNames budgetPolicy);
  knownGroup = key: r: if elem r roles then r else fail key "unknown group \"${r}\" (a host's group is its first role: ${concatStringsSep ", " roles})";

  windowPolicy = policy.windows or { };
  waveTable = listToAttrs (
    map (h: {
      name = h;
      value = waveOf h;
    }) hosts
  );
  checkedWindows = map (
    w:
    let
      win = windowPolicy.${w};
    in
    if !(builtins.any (h: toString waveTable.${h} == w) hosts) then
      fail "windows.${w}" "no host is in wave ${w}"
    else if match "([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]" win == null then
      fail "windows.${w}" "\"${win}\" is not a time window (HH:MM-HH:MM, e.g. \"02:00-05:00\")"
    else
      win
  ) (attrNames windowPolicy);
  windows = listToAttrs (
    map (h: {
      name = h;
      value = windowPolicy.${toString waveTable.${h}};
    }) (filter (h: windowPolicy ? ${toString waveTable.${h}}) hosts)
  );

  checkedSoak =
    if match "([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+" soak == null then
      fail "soak" "\"${soak}\" is not a duration of zero or more (e.g. \"15m\")"
    else
      soak;
in
builtins.deepSeq [ named.hosts checkedAfter checkedBudgets checkedWindows ] {
  waves = waveTable;
  soak = checkedSoak;
  groups = listToAttrs (
    map (h: {
      name = h;
      value = groupOf h;
    }) hosts
  );
  inherit budgets windows;
  lease = policy.lease or { };
}
