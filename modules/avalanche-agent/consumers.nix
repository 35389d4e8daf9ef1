# consumers: services.avalanche-agent.secrets -> the names of the services
# that read them (every .service named in a restartUnits or reloadUnits).
#
# Pure (builtins only). The module orders these services after the agent,
# which reports READY only once the running system's secrets are installed:
# at boot the secrets tmpfs is empty until then.
secrets:
let
  units = builtins.concatLists (
    map (
      name:
      let
        s = secrets.${name};
      in
      (s.restartUnits or [ ]) ++ (s.reloadUnits or [ ])
    ) (builtins.attrNames secrets)
  );
  services = builtins.filter (u: builtins.match ".*\\.service" u != null) units;
  strip = u: builtins.substring 0 (builtins.stringLength u - 8) u;
  names = map strip services;
in
builtins.attrNames (builtins.listToAttrs (map (n: { name = n; value = null; }) names))
