{
  description = "avalanche: the home fleet (NixOS hosts, k8s GitOps tree, cloud) and the agent that deploys it";

  # nixpkgs follows nixos-unstable: the fleet uses options that are only there
  # (services.kanidm.server.*, kanidmWithSecretProvisioning, Go >= 1.26.6 for
  # the agent). Moving to a release branch is a one-line change here plus a
  # `nix flake update`.
  #
  # No flake.lock is committed from the machine that wrote this (it had no
  # network to GitHub): run `nix flake lock` once and commit flake.lock.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    nixos-hardware.url = "github:NixOS/nixos-hardware";
  };

  outputs =
    { self, nixpkgs, ... }@inputs:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      fleet = import ./nixos/lib { inherit inputs self; };

      # Only the Go sources: changing a host or a profile must not rebuild
      # the agent (and thereby every host's closure). agent/drain is a module
      # of its own (avalanche-drain, with client-go), built apart.
      agentSrc = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./go.mod
          ./go.sum
          (lib.fileset.difference ./agent ./agent/drain)
          ./pkg
        ];
      };
      # avalanche-drain's module and the control-plane harness its tests
      # require through `replace ../../kubernetes/check`.
      drainSrc = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./agent/drain
          ./kubernetes/check/go.mod
          ./kubernetes/check/go.sum
          ./kubernetes/check/kubetest
        ];
      };
      version = self.shortRev or self.dirtyShortRev or "dev";
    in
    {
      packages = forAllSystems (pkgs: rec {
        avalanche-agent = pkgs.callPackage ./nixos/pkgs/avalanche-agent.nix {
          src = agentSrc;
          inherit version;
        };
        avalanche-drain = pkgs.callPackage ./nixos/pkgs/avalanche-drain.nix {
          src = drainSrc;
          inherit version;
        };
        default = avalanche-agent;
      });

      nixosModules = rec {
        avalanche-agent =
          { lib, pkgs, ... }:
          {
            imports = [ ./modules/avalanche-agent ];
            services.avalanche-agent.package =
              lib.mkDefault
                self.packages.${pkgs.stdenv.hostPlatform.system}.avalanche-agent;
            services.avalanche-agent.deploy.drain.package =
              lib.mkDefault
                self.packages.${pkgs.stdenv.hostPlatform.system}.avalanche-drain;
          };
        default = avalanche-agent;
      };

      # One output per inventory host, named after it (nixos/lib/inventory.nix).
      inherit (fleet) nixosConfigurations;

      checks = forAllSystems (
        pkgs:
        let
          inherit (pkgs.stdenv.hostPlatform) system;
          ownHosts = lib.filterAttrs (
            name: _: fleet.inventory.${name}.system == system
          ) fleet.nixosConfigurations;
        in
        {
          avalanche-agent = self.packages.${system}.avalanche-agent;

          # Boots a VM with the module and waits for READY + `status`.
          # Needs KVM; it cannot run in the repository's CI (Debian, no KVM).
          vm-avalanche-agent = import ./nixos/tests/avalanche-agent.nix {
            inherit pkgs self;
          };

          # Evaluates (does not build) every host of this system: a broken
          # option anywhere fails `nix flake check` in seconds.
          hosts-eval = pkgs.writeText "hosts-eval" (
            lib.concatMapStringsSep "\n" (
              name:
              # Context dropped: the check needs the evaluation, not the build.
              builtins.unsafeDiscardStringContext "${name} ${ownHosts.${name}.config.system.build.toplevel.drvPath}"
            ) (lib.attrNames ownHosts)
          );
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            go
            gopls
            sops
            age
            ssh-to-age
            just
            git
            nixfmt
            # The Python rewrite; the Bash nixos-rebuild is gone (26.05).
            nixos-rebuild-ng
            nix-output-monitor
            nvd
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
