# mysecrets: Raspberry Pi 4 (8 GB) holding the fleet's identity and trust:
# step-ca (the internal ACME CA), Kanidm at auth.internal (SSO for Tailscale and
# oauth2-proxy), Vaultwarden, and knot (authoritative DNS for .internal).
{ config, pkgs, ... }:
let
  secretsFile = ../../../secrets/nixos/mysecrets/secrets.yaml;
  secret = key: owner: restartUnits: {
    sopsFile = secretsFile;
    inherit key owner restartUnits;
  };
  s = config.services.avalanche-agent.secrets;
in
{
  services.avalanche-agent.secrets = {
    step-ca-password = secret "step-ca/intermediate-password" "step-ca" [ "step-ca.service" ];
    kanidm-admin-password = secret "kanidm/admin-password" "kanidm" [ "kanidm.service" ];
    kanidm-idm-admin-password = secret "kanidm/idm-admin-password" "kanidm" [ "kanidm.service" ];
    kanidm-oauth2-tailscale = secret "kanidm/oauth2/tailscale" "kanidm" [ "kanidm.service" ];
    kanidm-oauth2-proxy = secret "kanidm/oauth2/oauth2-proxy" "kanidm" [ "kanidm.service" ];
    vaultwarden-env = secret "vaultwarden/env" "vaultwarden" [ "vaultwarden.service" ];
    restic-password = secret "restic/password" "root" [ ];
    restic-s3-env = secret "restic/s3-env" "root" [ ];
  };

  # step-ca: root and intermediate were created once with `step ca init`
  # (docs/migration/); the intermediate key's password is the secret above.
  services.step-ca = {
    enable = true;
    address = "0.0.0.0";
    port = 8443;
    openFirewall = true;
    intermediatePasswordFile = s.step-ca-password.path;
    settings = {
      root = "/var/lib/step-ca/certs/root_ca.crt";
      crt = "/var/lib/step-ca/certs/intermediate_ca.crt";
      key = "/var/lib/step-ca/secrets/intermediate_ca_key";
      dnsNames = [
        "ca.internal"
        "mysecrets.internal"
      ];
      logger.format = "text";
      db = {
        type = "badgerv2";
        dataSource = "/var/lib/step-ca/db";
      };
      authority = {
        provisioners = [
          {
            type = "ACME";
            name = "acme";
          }
        ];
        claims.defaultTLSCertDuration = "168h";
      };
      tls = {
        minVersion = 1.2;
        maxVersion = 1.3;
      };
    };
  };

  # Certificates for this host's services come from the CA above.
  security.acme = {
    acceptTerms = true;
    defaults = {
      server = "https://ca.internal:8443/acme/acme/directory";
      email = "admin@avalanche.internal";
    };
    certs."auth.internal" = {
      group = "kanidm";
      listenHTTP = ":80";
      reloadServices = [ "kanidm.service" ];
    };
  };

  services.kanidm = {
    # The provisioning patch is what lets basicSecretFile set client secrets.
    # Bump with nixpkgs (the oldest versions are dropped over time).
    package = pkgs.kanidmWithSecretProvisioning_1_11;
    server.enable = true;
    server.settings = {
      origin = "https://auth.internal";
      domain = "auth.internal";
      bindaddress = "0.0.0.0:443";
      tls_chain = "${config.security.acme.certs."auth.internal".directory}/fullchain.pem";
      tls_key = "${config.security.acme.certs."auth.internal".directory}/key.pem";
      online_backup = {
        path = "/var/lib/kanidm/backups";
        versions = 7;
      };
    };
    client.enable = true;
    client.settings.uri = "https://auth.internal";

    # Users and groups are managed declaratively; see docs/kanidm-user-management.md.
    provision = {
      enable = true;
      adminPasswordFile = s.kanidm-admin-password.path;
      idmAdminPasswordFile = s.kanidm-idm-admin-password.path;

      groups = {
        fleet_admins = { };
        tailnet_users = { };
        vaultwarden_users = { };
      };

      # Not "admin": that is Kanidm's built-in system account, whose
      # password the module itself recovers (adminPasswordFile above).
      persons.fleetadmin = {
        displayName = "Fleet admin";
        mailAddresses = [ "admin@avalanche.internal" ];
        groups = [
          "fleet_admins"
          "tailnet_users"
          "vaultwarden_users"
        ];
      };

      systems.oauth2 = {
        # Tailscale "custom OIDC" sign-in (needs WebFinger on the mail
        # domain pointing at https://auth.internal/oauth2/openid/tailscale).
        tailscale = {
          displayName = "Tailscale";
          originUrl = "https://login.tailscale.com/a/oauth_response";
          originLanding = "https://login.tailscale.com/";
          basicSecretFile = s.kanidm-oauth2-tailscale.path;
          preferShortUsername = true;
          scopeMaps.tailnet_users = [
            "openid"
            "email"
            "profile"
          ];
        };
        # oauth2-proxy in front of the cluster's web UIs (kubernetes/base/infra).
        oauth2-proxy = {
          displayName = "Fleet web UIs";
          originUrl = "https://oauth2.internal/oauth2/callback";
          originLanding = "https://oauth2.internal/";
          basicSecretFile = s.kanidm-oauth2-proxy.path;
          scopeMaps.fleet_admins = [
            "openid"
            "email"
            "profile"
            "groups"
          ];
        };
      };
    };
  };

  services.vaultwarden = {
    enable = true;
    environmentFile = s.vaultwarden-env.path; # ADMIN_TOKEN, SMTP_PASSWORD
    config = {
      DOMAIN = "https://vault.internal";
      ROCKET_ADDRESS = "0.0.0.0";
      ROCKET_PORT = 8222;
      SIGNUPS_ALLOWED = false;
    };
  };

  services.knot = {
    enable = true;
    settings = {
      server.listen = [
        "0.0.0.0@53"
        "::@53"
      ];
      zone."internal".file = ./internal.zone;
    };
  };

  # Nightly backups into Garage on possum.
  services.restic.backups.mysecrets = {
    repository = "s3:http://possum.internal:3900/backups/mysecrets";
    passwordFile = s.restic-password.path;
    environmentFile = s.restic-s3-env.path; # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    paths = [
      "/var/lib/step-ca"
      "/var/lib/kanidm/backups"
      "/var/lib/vaultwarden"
    ];
    timerConfig.OnCalendar = "daily";
    pruneOpts = [
      "--keep-daily 7"
      "--keep-weekly 5"
      "--keep-monthly 12"
    ];
  };

  networking.firewall = {
    allowedTCPPorts = [
      53
      80
      443
      8222
    ];
    allowedUDPPorts = [ 53 ];
  };

  system.stateVersion = "24.05";
}
