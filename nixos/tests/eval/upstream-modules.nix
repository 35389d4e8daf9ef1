# upstream.nix's removed and renamed options as modules, with the messages
# lib.mkRemovedOptionModule and lib.mkRenamedOptionModule give. Unlike
# those, each old option has a default (null): the test forces every value
# of the configuration, and an upstream stub throws when read.
{ lib, upstream }:
let
  path = lib.splitString ".";
  # Set by a module, not just the null default below.
  isSet = opt: opt.highestPrio < (lib.mkOptionDefault null).priority;

  # oldOption name body: a module declaring the option `name` that NixOS no
  # longer has, with config `body opt`.
  oldOption =
    name: body:
    { options, ... }:
    {
      options = lib.setAttrByPath (path name) (
        lib.mkOption {
          visible = false;
          default = null;
        }
      );
      config = body (lib.getAttrFromPath (path name) options);
    };

  removed =
    name: instructions:
    oldOption name (opt: {
      assertions = [
        {
          assertion = !isSet opt;
          message = ''
            The option definition `${name}' in ${lib.showFiles opt.files} no longer has any effect; please remove it.
            ${instructions}
          '';
        }
      ];
    });

  renamed =
    from: to:
    oldOption from (
      opt:
      lib.mkMerge [
        {
          warnings = lib.optional (isSet opt) "The option `${from}' defined in ${lib.showFiles opt.files} has been renamed to `${to}'.";
        }
        (lib.mkIf (isSet opt) (lib.modules.mkAliasAndWrapDefsWithPriority (lib.setAttrByPath (path to)) opt))
      ]
    );
in
{
  imports =
    lib.mapAttrsToList removed upstream.removedOptions
    ++ lib.mapAttrsToList renamed upstream.renamedOptions;
}
