# Stub of nixpkgs/nixos/modules/profiles/qemu-guest.nix for the host-evaluation test.
{ }
