# A minimal `pkgs` for the host-evaluation test: every package the fleet
# names, as a fake derivation, and the few builders it calls. Nothing is
# built; each result carries what was passed in (script text, generated
# values) so that evaluating the host forces it.
#
# A package the fleet starts using must be added to `names` (after checking
# that nixpkgs has it): until then the test fails with "attribute … missing".
{ lib, upstream }:
system:
let
  hash = s: builtins.substring 0 32 (builtins.hashString "sha256" s);
  fake =
    name: extra:
    {
      type = "derivation";
      inherit name system;
      pname = name;
      outPath = "/nix/store/${hash "${system}-${name}"}-${name}";
      drvPath = "/nix/store/${hash "${system}-${name}.drv"}-${name}.drv";
      meta.mainProgram = name;
    }
    // extra;
  names = [
    "age"
    "awscli2"
    "coreutils"
    "firefox"
    "garage"
    "git"
    "go"
    "gopls"
    "htop"
    "jq"
    "just"
    "k9s"
    "kanidmWithSecretProvisioning_1_11"
    "kubectl"
    "nix"
    "nix-output-monitor"
    "nixfmt"
    "nixos-rebuild-ng"
    "nvd"
    "openssh"
    "sops"
    "ssh-to-age"
    "systemd"
    "util-linux"
    "vim"
  ];
  # A file whose name encodes its content: what generates it is evaluated.
  textFile = name: text: fake name { inherit text; outPath = "/nix/store/${hash text}-${name}"; };
  format = ext: {
    type = lib.types.attrsOf lib.types.anything;
    generate = name: value: textFile name (builtins.toJSON value);
  };
  platform = {
    inherit system;
    canExecute = other: other.system == system;
  };
in
lib.genAttrs names (n: fake n { })
// lib.mapAttrs (name: why: throw "pkgs.${name}: ${why}") upstream.removedPackages
// {
  inherit lib;
  # pkgs/top-level/aliases.nix: nixos-rebuild is nixos-rebuild-ng since 2025-12.
  nixos-rebuild = fake "nixos-rebuild-ng" { };
  linuxPackages_latest = {
    kernel = fake "linux" { };
  };
  stdenv = {
    hostPlatform = platform;
    buildPlatform = platform;
  };
  formats = {
    json = _: format "json";
    toml = _: format "toml";
  };
  writeText = textFile;
  writeShellScript = textFile;
  runCommand = name: env: text: textFile name text;
  mkShell = args: fake "shell" { inherit (args) packages; };
  callPackage =
    file: args:
    import file (
      {
        inherit lib;
        buildGoModule = a: fake a.pname { inherit (a) version vendorHash subPackages; };
      }
      // args
    );
  config = { };
}
