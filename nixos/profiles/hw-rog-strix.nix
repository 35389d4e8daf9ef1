# calypso: ASUS ROG Strix G513IM laptop (Ryzen + NVIDIA hybrid graphics).
# nixos-hardware sets up the AMD iGPU, NVIDIA PRIME offload and asusd.
{ inputs, ... }:
{
  imports = [ inputs.nixos-hardware.nixosModules.asus-rog-strix-g513im ];

  boot.loader.systemd-boot.enable = true;
  boot.loader.efi.canTouchEfiVariables = true;
  boot.initrd.availableKernelModules = [
    "nvme"
    "xhci_pci"
    "usb_storage"
    "sd_mod"
  ];
  boot.initrd.luks.devices.cryptroot.device = "/dev/disk/by-label/cryptroot";
  hardware.enableRedistributableFirmware = true;

  services.asusd.enable = true;
  services.supergfxd.enable = true;

  fileSystems."/" = {
    device = "/dev/mapper/cryptroot";
    fsType = "ext4";
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/BOOT";
    fsType = "vfat";
    options = [ "umask=0077" ];
  };
}
