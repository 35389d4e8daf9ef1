# The fleet's remote builders (inventory role "builder") as the Nix settings
# of a machine that offloads to them: the Raspberry Pis (hw-rpi4.nix) and the
# release builder (role-builder.nix). Pure: takes the inventory and the keys.
{ inventory, keys }:
{
  # machines names: nix.buildMachines entries. The client logs in as
  # nix-remote with its SSH host key (role-builder.nix lists those keys).
  machines = map (name: {
    hostName = "${name}.internal";
    sshUser = "nix-remote";
    sshKey = "/etc/ssh/ssh_host_ed25519_key";
    protocol = "ssh-ng";
    systems =
      if inventory.${name}.system == "x86_64-linux" then
        # x86 builders emulate aarch64 (role-builder.nix): slower, used last.
        [
          "x86_64-linux"
          "aarch64-linux"
        ]
      else
        [ inventory.${name}.system ];
    speedFactor = if inventory.${name}.system == "aarch64-linux" then 4 else 1;
    maxJobs = 4;
    supportedFeatures = [
      "big-parallel"
      "nixos-test"
    ];
  });

  # knownHosts names: programs.ssh.knownHosts entries for them.
  knownHosts =
    names:
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = {
          hostNames = [ "${name}.internal" ];
          publicKey = keys.hostKeys.${name};
        };
      }) names
    );
}
