# Rules the free-form stubs cannot know, as assertions: what the real NixOS
# module asserts, and what it accepts at evaluation but gets wrong at run
# time (each says which module source it comes from). The fleet's own
# profiles must pass all of them.
{
  config,
  lib,
  upstream,
  ...
}:
let
  c = config;
  agentSecrets = c.services.avalanche-agent.secrets or { };
  declaredUsers = c.users.users or { };
  grafana = c.services.grafana or { };
  sshServe = c.nix.sshServe or { };
  garage = c.services.garage or { };
  garageUnit = c.systemd.services.garage.serviceConfig or { };
  unfree = c.nixpkgs.config or { };

  # Unfree packages this host's options pull in.
  needsUnfree =
    lib.optionals (c.programs.steam.enable or false) upstream.unfreeFor.steam
    ++ lib.optionals (builtins.elem "nvidia" (c.services.xserver.videoDrivers or [ ])) upstream.unfreeFor.nvidia;
  allowed =
    name: (unfree.allowUnfree or false) || (unfree.allowUnfreePredicate or (_: false)) { pname = name; };

  garageDirs = lib.filter (d: !(lib.hasPrefix "/var/lib/garage" d)) (
    lib.toList (garage.settings.data_dir or "/var/lib/garage/data")
    ++ [ (garage.settings.metadata_dir or "/var/lib/garage/meta") ]
  );
  garageUser = garageUnit.User or null;
  made = dir: builtins.any (r: lib.hasPrefix "d ${dir} " r && lib.hasInfix " ${garageUser} " r) (
    c.systemd.tmpfiles.rules or [ ]
  );

  # Every path literal in the configuration must exist (NixOS copies each
  # into the store).
  pathsIn =
    v:
    if builtins.isPath v then
      [ v ]
    else if builtins.isList v then
      builtins.concatMap pathsIn v
    else if builtins.isAttrs v && !(v ? outPath) then
      builtins.concatMap pathsIn (builtins.attrValues v)
    else
      [ ];
  # (Secrets files have their own message, from modules/avalanche-agent.)
  missingPaths = lib.unique (
    builtins.filter (p: !builtins.pathExists p) (
      pathsIn (removeAttrs c [ "_module" "assertions" "warnings" "system" "services" ])
      ++ pathsIn (removeAttrs c.services [ "avalanche-agent" ])
    )
  );
in
{
  assertions = [
    {
      # nixos/modules/services/monitoring/grafana.nix asserts the first half.
      assertion =
        !(grafana.enable or false)
        || lib.hasPrefix "$__file{" (grafana.settings.security.secret_key or "");
      message = "services.grafana.settings.security.secret_key has no default any more; set it to \"$__file{<secret path>}\" (a literal key would be copied into the world-readable store).";
    }
    {
      assertion = !(sshServe.enable or false) || (sshServe.protocol or "ssh") != "ssh-ng" || !(sshServe ? write);
      message = "nix.sshServe.write does nothing with protocol ssh-ng (the session is `nix-daemon --stdio`, nixos/modules/services/misc/nix-ssh-serve.nix); set nix.sshServe.trusted so uploads are accepted.";
    }
    {
      assertion = !(sshServe.enable or false) || (sshServe.protocol or "ssh") != "ssh-ng" || (sshServe.trusted or false);
      message = "nix.sshServe over ssh-ng without trusted = true: nix-ssh is not a trusted user, so the builders' unsigned paths are refused.";
    }
    {
      assertion = garageDirs == [ ] || (garageUnit.DynamicUser or true) == false && builtins.all made garageDirs;
      message = "services.garage: ${lib.concatStringsSep ", " garageDirs} is outside /var/lib/garage, which is all the module creates, and its dynamic user cannot own it: turn DynamicUser off, declare the user and create each directory for it (systemd.tmpfiles.rules \"d <dir> 0700 <user> <group> -\").";
    }
    {
      assertion = missingPaths == [ ];
      message = "files the configuration names do not exist: ${lib.concatMapStringsSep ", " toString missingPaths}";
    }
  ]
  ++ map (name: {
    assertion = allowed name;
    message = "${name} is unfree and not allowed: add it to nixpkgs.config.allowUnfreePredicate (only what the host needs).";
  }) needsUnfree
  ++ lib.mapAttrsToList (name: s: {
    assertion =
      !(builtins.elem s.owner upstream.dynamicUsers || builtins.elem s.group upstream.dynamicUsers)
      || declaredUsers ? ${s.owner};
    message = "services.avalanche-agent.secrets.${name}: owner ${s.owner} (or group ${s.group}) is a DynamicUser that exists only while its service runs; the agent installs secrets before that. Use root for files systemd reads (LoadCredential, EnvironmentFile) or a declared user.";
  }) agentSecrets
  ++ map (name: {
    assertion = false;
    message = "services.kanidm.provision.persons.${name}: ${name} is one of Kanidm's built-in accounts; provision the person under another name.";
  }) (builtins.filter (n: builtins.elem n upstream.kanidmBuiltinAccounts) (builtins.attrNames (c.services.kanidm.provision.persons or { })));
}
