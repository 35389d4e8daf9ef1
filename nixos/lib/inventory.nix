# The fleet as data: host name -> { system; hardware; roles; dir? }.
#
# Pure (no nixpkgs, no functions): mkNixosConfig reads it, the build-offload and
# k3s profiles derive their peers from it, and modules/modules_test.go checks it
# against the directories nixos/hosts/* and cloud/nixos with
#   nix-instantiate --eval --strict --json nixos/lib/inventory.nix
# hardware selects nixos/profiles/hw-<hardware>.nix, each role
# nixos/profiles/role-<role>.nix; dir (default "nixos/hosts/<name>") is the
# host's own directory, relative to the repository root.
let
  rpi4 = roles: {
    system = "aarch64-linux";
    hardware = "rpi4";
    inherit roles;
  };
  opi = roles: {
    system = "aarch64-linux";
    hardware = "opi5plus";
    inherit roles;
  };
  x86 = roles: {
    system = "x86_64-linux";
    hardware = "x86";
    inherit roles;
  };
in
{
  calypso = {
    system = "x86_64-linux";
    hardware = "rog-strix";
    roles = [ "workstation" ];
  };

  mysecrets = rpi4 [ "server" ];
  eagle = rpi4 [ "server" ];
  possum = rpi4 [
    "server"
    "binary-cache"
  ];

  raccoon00 = rpi4 [ "k3s-agent" ];
  raccoon01 = rpi4 [ "k3s-agent" ];
  raccoon02 = rpi4 [ "k3s-agent" ];
  raccoon03 = rpi4 [ "k3s-agent" ];
  raccoon04 = rpi4 [ "k3s-agent" ];
  raccoon05 = rpi4 [ "k3s-agent" ];

  opi01 = opi [
    "k3s-server"
    "builder"
  ];
  opi02 = opi [
    "k3s-server"
    "builder"
  ];
  opi03 = opi [
    "k3s-server"
    "builder"
  ];

  beacon = x86 [
    "server"
    "builder"
  ];
  routy = x86 [ "server" ];
  cardinal = x86 [
    "server"
    "builder"
  ];

  exit-node = {
    system = "x86_64-linux";
    hardware = "hetzner-cloud";
    roles = [ "exit-node" ];
    dir = "cloud/nixos";
  };
}
