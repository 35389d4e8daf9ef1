# NixOS VM test: the module starts the agent, the unit (Type=notify) reaches
# READY, and `avalanche-agent status` answers over the control socket, for
# root and for a member of the status group.
#
# Run: nix build .#checks.x86_64-linux.vm-avalanche-agent
# It needs KVM and a full nixpkgs, so it CANNOT run in this repository's CI
# (Debian container, Nix 2.8, no network to nixpkgs); there the Go tests
# evaluate the same module configuration with nixpkgs' lib.evalModules
# (modules/hosts_test.go, TestAgentModuleAlone).
{ pkgs, self }:
pkgs.testers.runNixOSTest {
  name = "avalanche-agent";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ self.nixosModules.default ];

      # A local bare repository: nothing to reach over the network, so the
      # test is about the unit, the socket and the CLI, not about git.
      systemd.tmpfiles.rules = [ "d /srv 0755 root root -" ];
      system.activationScripts.fleetRepo = ''
        if [ ! -d /srv/fleet.git ]; then
          ${pkgs.git}/bin/git init --quiet --bare --initial-branch=main /srv/fleet.git
        fi
      '';

      services.avalanche-agent = {
        enable = true;
        repository.url = "/srv/fleet.git";
        # Never switch the VM under the test driver.
        deploy.action = "test";
        deploy.healthChecks = [ ];
      };

      users.users.alice = {
        isNormalUser = true;
        extraGroups = [ "avalanche" ];
      };
    };

  testScript = ''
    machine.wait_for_unit("avalanche-agent.service")  # Type=notify: active means READY=1
    print(machine.succeed("avalanche-agent status"))
    machine.succeed("avalanche-agent status --json | ${pkgs.jq}/bin/jq -e .")
    machine.succeed("su - alice -c 'avalanche-agent status'")
    machine.succeed("test -f /etc/avalanche-agent/secrets.json")
    machine.succeed("${pkgs.jq}/bin/jq -e '.version == 1' /etc/avalanche-agent/secrets.json")
  '';
}
