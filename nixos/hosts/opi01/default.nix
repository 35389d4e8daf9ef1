# opi01: Orange Pi 5 Plus, k3s controller and remote builder
# (hw-opi5plus, role-k3s-server, role-builder).
{
  system.stateVersion = "25.05";
}
