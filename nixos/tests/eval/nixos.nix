# Stands in for NixOS's own modules in the host-evaluation test.
#
# Every option the fleet sets that no module of ours declares is free-form
# (`loose`: lists concatenate, attribute sets merge, other values must
# agree, as with most NixOS option types). Declared here are only the NixOS
# options the fleet reads back, with their upstream defaults, plus
# `system.build.toplevel`, which like NixOS's refuses to exist while an
# assertion fails. upstream.nix and rules.nix add what a stub cannot know.
{ lib, upstream }:
{ config, ... }:
let
  inherit (lib) mkOption types;

  loose = lib.mkOptionType {
    name = "loose";
    description = "free-form stub of a NixOS option";
    merge =
      loc: defs:
      let
        values = map (d: d.value) defs;
        isSet = v: builtins.isAttrs v && !(v ? outPath);
      in
      if builtins.all builtins.isList values then
        (types.listOf loose).merge loc defs
      else if builtins.all isSet values then
        (types.attrsOf loose).merge loc defs
      else
        lib.mergeEqualOption loc defs;
  };

  opt = type: default: mkOption { inherit type default; };

  # What a real toplevel depends on: everything but the module system's own
  # arguments and the toplevel itself.
  everything = removeAttrs config [
    "_module"
    "system"
  ] // { system = removeAttrs config.system [ "build" ]; };

  failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
in
{
  imports = [
    (import ./upstream-modules.nix { inherit lib upstream; })
    ./rules.nix
  ];

  config._module.freeformType = loose;
  config._module.args = {
    pkgs = import ./pkgs.nix { inherit lib upstream; } config.nixpkgs.hostPlatform;
    inherit upstream;
  };

  # Top-level namespaces NixOS declares, as single free-form options. Left
  # to the root's freeformType, every definition under them would have to be
  # discharged to list config's attributes, and a definition guarded by
  # `mkIf cfg.enable` (ours) would then depend on itself.
  options = lib.genAttrs [
    "boot"
    "documentation"
    "environment"
    "fileSystems"
    "hardware"
    "i18n"
    "networking"
    "nixpkgs"
    "programs"
    "time"
    "users"
    "virtualisation"
    "zramSwap"
  ] (_: opt loose { }) // {
    assertions = opt (types.listOf types.unspecified) [ ];
    warnings = opt (types.listOf types.str) [ ];
    # nixos/modules/config/nix.nix, nixos/modules/system/boot/systemd.nix
    nix.package = opt types.unspecified config._module.args.pkgs.nix;
    systemd.package = opt types.unspecified config._module.args.pkgs.systemd;
    # nixos/modules/services/networking/tailscale.nix
    services.tailscale.interfaceName = opt types.str "tailscale0";
    services.tailscale.port = opt types.port 41641;
    # nixos/modules/misc/ids.nix (the fixed ids the fleet uses)
    ids.uids = opt (types.attrsOf types.int) { grafana = 196; };
    # nixos/modules/security/acme: certs.<name>.directory is read-only.
    security.acme.certs = opt (types.attrsOf (
      types.submodule (
        { name, ... }:
        {
          freeformType = loose;
          options.directory = mkOption {
            type = types.str;
            readOnly = true;
            default = "/var/lib/acme/${name}";
          };
        }
      )
    )) { };

    system.build.toplevel = mkOption {
      type = types.unspecified;
      readOnly = true;
      description = "Stub of the system derivation: evaluates the whole configuration.";
    };
  };

  config.system.build.toplevel =
    if failed != [ ] then
      throw "\nFailed assertions:\n${lib.concatMapStrings (m: "- ${m}\n") failed}"
    else
      builtins.deepSeq everything {
        type = "derivation";
        name = "nixos-system-${config.networking.hostName}";
        drvPath = "/nix/store/${
          builtins.substring 0 32 (builtins.hashString "sha256" config.networking.hostName)
        }-nixos-system-${config.networking.hostName}.drv";
      };
}
