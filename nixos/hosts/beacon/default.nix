# beacon: x86 server, remote builder; runs the fleet's monitoring.
{
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
  };
  networking.firewall.allowedTCPPorts = [ 3000 ];

  system.stateVersion = "25.05";
}
