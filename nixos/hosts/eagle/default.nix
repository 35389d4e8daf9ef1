# eagle: Raspberry Pi 4 running Forgejo, which hosts this repository. Hosts
# pull over SSH as forgejo@eagle.internal with their host key as a read-only
# deploy key (nixos/profiles/global.nix).
{
  services.forgejo = {
    enable = true;
    lfs.enable = true;
    database.type = "sqlite3";
    settings = {
      server = {
        DOMAIN = "git.internal";
        ROOT_URL = "http://git.internal:3000/";
        HTTP_PORT = 3000;
        SSH_DOMAIN = "eagle.internal";
      };
      service.DISABLE_REGISTRATION = true;
      # Sign-in through Kanidm is configured as an auth source in the admin
      # UI (an OAuth2 client "forgejo" in Kanidm): see docs/kanidm-user-management.md.
      session.COOKIE_SECURE = false;
    };
    dump = {
      enable = true;
      interval = "daily";
    };
  };

  networking.firewall.allowedTCPPorts = [ 3000 ];

  system.stateVersion = "24.05";
}
