# calypso: the ASUS ROG Strix laptop (hw-rog-strix, role-workstation).
# It used to be its own repository (snowy); see docs/migration/.
{ lib, pkgs, ... }:
{
  users.users.admin.description = "calypso's owner";

  programs.steam.enable = true;
  virtualisation.podman.enable = true;

  # Exactly the unfree packages this laptop needs: Steam, and the NVIDIA
  # driver that nixos-hardware's asus-rog-strix-g513im module turns on.
  # Anything else unfree still fails evaluation.
  nixpkgs.config.allowUnfreePredicate =
    pkg:
    builtins.elem (lib.getName pkg) [
      "steam"
      "steam-unwrapped"
      "nvidia-x11"
      "nvidia-settings"
      "nvidia-persistenced"
    ];

  environment.systemPackages = with pkgs; [
    kubectl
    k9s
    go
    gopls
  ];

  system.stateVersion = "24.11";
}
