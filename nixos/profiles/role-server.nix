# A headless, always-on machine: node metrics, automatic reboots in the night when
# the kernel changed, no documentation or desktop bits.
{ lib, ... }:
{
  services.avalanche-agent = {
    deploy.reboot = {
      enable = lib.mkDefault true;
      window = lib.mkDefault "03:00-05:00";
    };
  };

  services.prometheus.exporters.node = {
    enable = true;
    openFirewall = true;
  };

  documentation.enable = false;
  networking.firewall.enable = true;
}
