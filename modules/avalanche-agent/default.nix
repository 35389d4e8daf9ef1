# services.avalanche-agent: the daemon that pulls the fleet repository and
# switches this host to it. Options in options.nix; the JSON config and the
# secrets manifest come from the pure renderers render.nix and manifest.nix
# (tested without nixpkgs by modules/modules_test.go).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.avalanche-agent;
  json = pkgs.formats.json { };

  rawConfig = json.generate "avalanche-agent-config.json" (import ./render.nix cfg);

  # Run the agent's own strict parser on the rendered file at build time, so a
  # typo in `settings` fails `nixos-rebuild build`, not the running agent.
  # Skipped when the build platform cannot run the host's binary (cross builds).
  canRun = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
  configFile =
    if canRun then
      pkgs.runCommand "avalanche-agent-config.json" { } ''
        ${cfg.package}/bin/avalanche-agent check-config ${rawConfig}
        cp ${rawConfig} $out
      ''
    else
      rawConfig;

  manifestFile = json.generate "avalanche-agent-secrets.json" (import ./manifest.nix cfg.secrets);

  # Services that read a secret start after the agent has installed them.
  consumers = import ./consumers.nix cfg.secrets;
in
{
  imports = [
    ./options.nix
    ./builder.nix
  ];

  config = lib.mkIf cfg.enable (lib.mkMerge [
    {
      systemd.services = lib.genAttrs consumers (_: {
        after = [ "avalanche-agent.service" ];
        wants = [ "avalanche-agent.service" ];
      });
    }
    {
      assertions = import ./checks.nix cfg;

      environment.etc."avalanche-agent/config.json".source = configFile;
      # The agent reads this from the *built* system (<toplevel>/etc/...) before
      # switching, so the secrets for a generation travel with it.
      environment.etc."avalanche-agent/secrets.json".source = manifestFile;

      environment.systemPackages = [ cfg.package ];

      # The agent runs avalanche-drain only around a switch that restarts k3s
      # or a reboot; it is its own package (client-go stays out of the agent).
      services.avalanche-agent.deploy.drain.helper = lib.mkIf (cfg.deploy.drain.package != null) (
        lib.mkDefault "${cfg.deploy.drain.package}/bin/avalanche-drain"
      );

      # A fresh host's first deployment declares secrets for users that this
      # very activation creates (kanidm, step-ca, vaultwarden): the agent
      # installed them as root's. Hand them over after users and groups
      # exist and before any service starts, as sops-nix orders it. At boot
      # there is no generation yet (the agent installs them later): nothing
      # to do. An owner still missing is judged by the agent after the switch.
      system.activationScripts.avalanche-agent-secrets-owners = lib.mkIf (cfg.secrets != { }) (
        lib.stringAfter [ "users" "groups" ] ''
          ${cfg.package}/bin/avalanche-agent secrets handover --config ${configFile} --system "$systemConfig" \
            || echo "avalanche-agent: some secrets are still root's; the agent judges it after the switch" >&2
        ''
      );

      users.groups.${cfg.group} = { };

      # The secrets generations live on a ramfs: RAM only, never swapped. It
      # is mounted by systemd before the agent starts, in the host's mount
      # namespace, so every service sees it; a mount made by the agent itself
      # would stay inside its unit's private namespace (PrivateTmp=).
      systemd.mounts = [
        {
          what = "ramfs";
          where = "/run/avalanche-agent/secrets.d";
          type = "ramfs";
          options = "mode=0751,nosuid,nodev,noexec";
          requiredBy = [ "avalanche-agent.service" ];
          before = [ "avalanche-agent.service" ];
        }
      ];

      systemd.services.avalanche-agent = {
        description = "avalanche-agent: deploy this host from the fleet repository";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];

        # The agent switches the system through a transient unit (systemd-run)
        # and, once the switch is confirmed, exits when the new system ships a
        # different agent; Restart=always then starts the new one. A restart by
        # switch-to-configuration would interrupt the confirmation half-way.
        restartIfChanged = false;

        path = [
          config.nix.package
          pkgs.git
          config.systemd.package
        ];

        serviceConfig = {
          Type = "notify";
          NotifyAccess = "main";
          WatchdogSec = "60s";
          Restart = "always";
          RestartSec = "10s";
          ExecStart = "${cfg.package}/bin/avalanche-agent run --config /etc/avalanche-agent/config.json";
          StateDirectory = "avalanche-agent";
          StateDirectoryMode = "0700";
          RuntimeDirectory = "avalanche-agent";
          RuntimeDirectoryMode = "0755"; # the socket itself is 0660 root:${cfg.group}
          # Keep the control socket's directory and the deploy lock across
          # the agent's own restarts.
          RuntimeDirectoryPreserve = "yes";
          # Runs as root on purpose: it sets the system profile and starts
          # switch-to-configuration (in a transient unit, via systemd-run).
          PrivateTmp = true;
        }
        // lib.optionalAttrs (cfg.memory.high != null) { MemoryHigh = cfg.memory.high; }
        // lib.optionalAttrs (cfg.memory.max != null) { MemoryMax = cfg.memory.max; };
      };
    }
  ]);
}
