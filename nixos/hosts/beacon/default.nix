# beacon: x86 server, remote builder; runs the fleet's monitoring.
{ config, ... }:
let
  s = config.services.avalanche-agent.secrets;
in
{
  # Grafana signs sessions and encrypts data-source passwords with this key;
  # NixOS has no default for it any more. Generate once with
  # `openssl rand -hex 32` (an existing Grafana keeps its old key: the
  # former default was "SW2YcwTIb9zpOOhoPsMm", see docs/migration/).
  # Owned by grafana's fixed uid rather than its name: the agent installs the
  # secret before the switch that first creates the user.
  services.avalanche-agent.secrets.grafana-secret-key = {
    sopsFile = ../../../secrets/nixos/beacon/secrets.yaml;
    key = "grafana/secret-key";
    owner = toString config.ids.uids.grafana;
    restartUnits = [ "grafana.service" ];
  };

  services.prometheus = {
    enable = true;
    retentionTime = "30d";
    scrapeConfigs = [
      {
        job_name = "node";
        static_configs = [
          {
            targets = map (h: "${h}.internal:9100") [
              "mysecrets"
              "eagle"
              "possum"
              "routy"
              "cardinal"
              "beacon"
            ];
          }
        ];
      }
    ];
  };
  services.grafana = {
    enable = true;
    settings.server = {
      http_addr = "0.0.0.0";
      http_port = 3000;
      domain = "grafana.internal";
    };
    # Grafana's file provider: read at start-up, never copied into the store.
    settings.security.secret_key = "$__file{${s.grafana-secret-key.path}}";
  };
  networking.firewall.allowedTCPPorts = [ 3000 ];

  system.stateVersion = "25.05";
}
