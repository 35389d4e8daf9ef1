# The host-evaluation test's entry point (modules/hosts_test.go): the
# repository's flake.nix with nixpkgs replaced by nixpkgs' real `lib` and
# stubs of NixOS (nixos.nix) and `pkgs` (pkgs.nix), so that every host of the
# inventory goes through flake.nix, mkNixosConfig, the profiles and its own
# directory, with the real module system and no network.
#
#   nix-instantiate --eval --strict --json --readonly-mode \
#     -E '(import nixos/tests/eval { nixpkgsLib = /path/to/nixpkgs/lib; repo = ./.; }).report "eagle"'
#
# On a machine with network, the real thing is
#   nix eval .#nixosConfigurations.<host>.config.system.build.toplevel.drvPath
{ nixpkgsLib, repo }:
let
  lib = import nixpkgsLib;
  upstream = import ./upstream.nix;

  nixosSystem =
    {
      modules,
      specialArgs ? { },
      ...
    }:
    lib.evalModules {
      class = "nixos";
      specialArgs = {
        modulesPath = ./modules-path;
      }
      // specialArgs;
      modules = modules ++ [ (import ./nixos.nix { inherit lib upstream; }) ];
    };

  # nixos-hardware's modules, reduced to what the rules look at:
  # common/gpu/nvidia sets the NVIDIA driver (unfree) on calypso's laptop.
  nixos-hardware.nixosModules = {
    raspberry-pi-4 = { };
    asus-rog-strix-g513im = {
      services.xserver.videoDrivers = [ "nvidia" ];
    };
  };

  nixpkgs = {
    lib = lib // {
      inherit nixosSystem;
    };
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
      import ./pkgs.nix { inherit lib upstream; }
    );
  };

  flake = import (repo + "/flake.nix");
  inputs = {
    inherit self nixpkgs nixos-hardware;
  };
  self = flake.outputs inputs // {
    outPath = repo;
    inherit inputs;
  };

  hostConfig = name: self.nixosConfigurations.${name}.config;
  agent = name: (hostConfig name).services.avalanche-agent;

  reportOf =
    config:
    let
      cfg = config.services.avalanche-agent;
      toplevel = config.system.build.toplevel.drvPath;
      unit = config.systemd.services.avalanche-agent;
    in
    builtins.seq toplevel {
      inherit toplevel;
      inherit (config) warnings;
      agentConfig = import (repo + "/modules/avalanche-agent/render.nix") cfg;
      manifest = import (repo + "/modules/avalanche-agent/manifest.nix") cfg.secrets;
      agentUnit = {
        inherit (unit) restartIfChanged;
        inherit (unit.serviceConfig) Type ExecStart WatchdogSec;
        MemoryHigh = unit.serviceConfig.MemoryHigh or null;
        MemoryMax = unit.serviceConfig.MemoryMax or null;
      };
      etc = builtins.attrNames config.environment.etc;
      # The activation step that hands secrets to owners the activation creates.
      secretsOwners = config.system.activationScripts.avalanche-agent-secrets-owners or null;
      # Services started after the agent (it installs their secrets first).
      afterAgent = builtins.attrNames (
        lib.filterAttrs (_: s: builtins.elem "avalanche-agent.service" (s.after or [ ])) config.systemd.services
      );
      postBuildHook = config.nix.settings.post-build-hook.text or null;
      substituters = config.nix.settings.substituters or [ ];
      sshServeKeys = config.nix.sshServe.keys or [ ];
      # Where this host's Nix builds go (builder mode, role-builder.nix).
      distributedBuilds = config.nix.distributedBuilds or false;
      buildMachines = map (m: m.hostName) (config.nix.buildMachines or [ ]);
      knownHosts = lib.mapAttrs (_: h: h.publicKey) (config.programs.ssh.knownHosts or { });
      allowUnfree = config.nixpkgs.config.allowUnfree or false;
    };
in
{
  # The flake's inputs must be exactly the ones stubbed above.
  inputs = builtins.attrNames flake.inputs;

  hosts = builtins.attrNames self.nixosConfigurations;

  # What one host needs from its secrets files, read without touching them:
  # [ { name; file; key; format; } ] (the test writes those files).
  secretsPlan =
    host:
    lib.mapAttrsToList (name: s: {
      inherit name;
      file = toString s.sopsFile;
      key = if s.key != null then s.key else name;
      inherit (s) format;
    }) (agent host).secrets;

  # Everything the test checks for one host. The toplevel's drvPath is forced
  # first: it throws "Failed assertions: …" as NixOS does, and otherwise
  # evaluates every value of the configuration.
  report = name: reportOf (hostConfig name);

  # Every host's report in one evaluation (cheaper than one per host).
  reports = builtins.mapAttrs (name: _: reportOf (hostConfig name)) self.nixosConfigurations;

  # What a host opens to the LAN and the pod network, and the kernel modules
  # it loads at boot (kubernetes/ needs both on k3s nodes).
  nodeNetwork =
    name:
    let
      c = hostConfig name;
    in
    {
      extraCommands = c.networking.firewall.extraCommands or "";
      allowedTCPPorts = c.networking.firewall.allowedTCPPorts or [ ];
      kernelModules = c.boot.kernelModules or [ ];
    };

  # The module alone, configured as the VM test (nixos/tests/avalanche-agent.nix)
  # configures it: no fleet profile involved.
  moduleOnly = reportOf
    (nixosSystem {
      modules = [
        self.nixosModules.default
        {
          networking.hostName = "machine";
          nixpkgs.hostPlatform = "x86_64-linux";
          services.avalanche-agent = {
            enable = true;
            repository.url = "/srv/fleet.git";
            deploy.action = "test";
            deploy.healthChecks = [ ];
          };
        }
      ];
    }).config;

  # The module's service as the real-systemd tier (agent/internal/nspawntest)
  # installs it: `options` is a module (services.avalanche-agent.* and any
  # override the tier states), `package` the directory holding the agent's
  # bin/. Returns the unit's attribute set, the mounts, the groups the module
  # creates and the rendered agent config.
  agentUnit =
    { options, package }:
    let
      config =
        (nixosSystem {
          modules = [
            self.nixosModules.default
            options
            {
              networking.hostName = lib.mkDefault "machine";
              nixpkgs.hostPlatform = "x86_64-linux";
              services.avalanche-agent.enable = true;
              services.avalanche-agent.package = {
                type = "derivation";
                name = "avalanche-agent";
                outPath = package;
              };
            }
          ];
        }).config;
      unit = config.systemd.services.avalanche-agent;
    in
    builtins.seq config.system.build.toplevel.drvPath {
      service = {
        inherit (unit) description serviceConfig path;
        wantedBy = unit.wantedBy or [ ];
        wants = unit.wants or [ ];
        after = unit.after or [ ];
        environment = unit.environment or { };
      };
      inherit (config.systemd) mounts;
      groups = builtins.attrNames config.users.groups;
      agentConfig = import (repo + "/modules/avalanche-agent/render.nix") config.services.avalanche-agent;
    };

  # Where a stub package's main program is (the hook test swaps it).
  stubExe = system: name: lib.getExe nixpkgs.legacyPackages.${system}.${name};

  # Whether calypso-style predicates accept a package name.
  unfreeAllowed =
    name: pname: ((hostConfig name).nixpkgs.config.allowUnfreePredicate or (_: false)) { inherit pname; };

  # The flake's other outputs, built with the stub pkgs: the dev shell's and
  # formatter's package names and the agent package's build inputs.
  flakeOutputs = lib.mapAttrs (system: _: {
    devShell = map (p: p.name) self.devShells.${system}.default.packages;
    formatter = self.formatter.${system}.name;
    agent = {
      inherit (self.packages.${system}.avalanche-agent) name subPackages;
    };
  }) nixpkgs.legacyPackages;
}
