# A laptop someone is sitting at (calypso): desktop, sound, NetworkManager.
# The agent deploys with `boot`: nothing changes under the user's hands; the
# new generation starts at the next reboot.
{ lib, pkgs, ... }:
{
  services.avalanche-agent = {
    deploy.action = lib.mkDefault "boot";
    pollInterval = lib.mkDefault "15m";
  };

  networking.networkmanager.enable = true;
  services.xserver.enable = true;
  services.displayManager.sddm.enable = true;
  services.desktopManager.plasma6.enable = true;
  services.pipewire = {
    enable = true;
    pulse.enable = true;
  };
  hardware.bluetooth.enable = true;
  services.fwupd.enable = true;

  users.users.admin.extraGroups = [ "networkmanager" ];

  environment.systemPackages = with pkgs; [
    firefox
    sops
    age
    ssh-to-age
    just
  ];
}
