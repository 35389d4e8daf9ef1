# raccoon03: Raspberry Pi 4, k3s worker (hw-rpi4, role-k3s-agent).
{
  system.stateVersion = "25.05";
}
