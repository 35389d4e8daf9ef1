# Hetzner Cloud CPX11 (the exit-node VPS): QEMU guest, BIOS boot, one disk.
{ modulesPath, ... }:
{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];

  boot.loader.grub = {
    enable = true;
    device = "/dev/sda";
  };
  boot.initrd.availableKernelModules = [
    "ata_piix"
    "virtio_pci"
    "virtio_scsi"
    "xhci_pci"
    "sd_mod"
    "sr_mod"
  ];

  fileSystems."/" = {
    device = "/dev/sda1";
    fsType = "ext4";
  };

  # Hetzner hands out addresses over DHCP (IPv4) and RA (IPv6).
  networking.useDHCP = true;
}
