# Orange Pi 5 Plus (opi01-03): RK3588, 16 GB, NVMe root. Mainline Linux boots
# it (device tree rockchip/rk3588-orangepi-5-plus.dtb); U-Boot lives in SPI
# flash and loads extlinux.conf, flashed once by hand (docs/migration/).
{ pkgs, ... }:
{
  boot.loader.grub.enable = false;
  boot.loader.generic-extlinux-compatible.enable = true;
  boot.kernelPackages = pkgs.linuxPackages_latest;
  hardware.deviceTree.name = "rockchip/rk3588-orangepi-5-plus.dtb";
  boot.initrd.availableKernelModules = [
    "nvme"
    "usbhid"
    "usb_storage"
  ];
  hardware.enableRedistributableFirmware = true;

  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    options = [ "noatime" ];
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/BOOT";
    fsType = "vfat";
  };

  zramSwap.enable = true;
}
