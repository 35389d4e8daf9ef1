# Fleet helpers for flake.nix: the inventory and mkNixosConfig.
{ inputs, self }:
let
  inventory = import ./inventory.nix;
  repoRoot = ../..;

  # hostsWithRole role: names of the inventory hosts that have role.
  hostsWithRole =
    role: builtins.filter (n: builtins.elem role inventory.${n}.roles) (builtins.attrNames inventory);

  # mkNixosConfig name: the NixOS system of one inventory host. Every host
  # gets the avalanche-agent module, the global profile, its hardware profile,
  # its role profiles and finally its own directory, which only sets options.
  mkNixosConfig =
    name:
    let
      host = inventory.${name};
    in
    inputs.nixpkgs.lib.nixosSystem {
      specialArgs = {
        inherit
          inputs
          self
          inventory
          hostsWithRole
          ;
        host = host // {
          inherit name;
        };
      };
      modules = [
        self.nixosModules.default
        ../profiles/global.nix
        (../profiles + "/hw-${host.hardware}.nix")
      ]
      ++ map (role: ../profiles + "/role-${role}.nix") host.roles
      ++ [
        (repoRoot + "/${host.dir or "nixos/hosts/${name}"}")
        {
          networking.hostName = name;
          nixpkgs.hostPlatform = host.system;
          # The flake output is the hostname; said here so it holds even if a
          # host overrides networking.hostName.
          services.avalanche-agent.flakeOutput = name;
        }
      ];
    };
in
{
  inherit inventory mkNixosConfig hostsWithRole;

  nixosConfigurations = builtins.mapAttrs (name: _: mkNixosConfig name) inventory;
}
