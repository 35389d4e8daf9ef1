# cardinal: x86 server, the fastest remote builder (hw-x86, role-server,
# role-builder).
{
  nix.settings.max-jobs = 8;

  system.stateVersion = "25.05";
}
