# calypso: the ASUS ROG Strix laptop (hw-rog-strix, role-workstation).
# It used to be its own repository (snowy); see docs/migration/.
{ pkgs, ... }:
{
  users.users.admin.description = "calypso's owner";

  programs.steam.enable = true;
  virtualisation.podman.enable = true;

  environment.systemPackages = with pkgs; [
    kubectl
    k9s
    go
    gopls
  ];

  system.stateVersion = "24.11";
}
