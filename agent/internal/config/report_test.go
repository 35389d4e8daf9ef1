package config

import (
	"strings"
	"testing"
)

func TestReportForge(t *testing.T) {
	const https = `"url":"https://git.internal/fleet/avalanche.git","tokenFile":"/run/secrets/git"`
	tests := []struct {
		name     string
		repo     string // JSON members of repository
		forge    string // JSON of report.forge
		wantRepo string
		wantErr  []string
	}{
		{name: "off", repo: https, forge: `{}`},
		{name: "repository from an https URL", repo: https,
			forge: `{"url":"https://git.internal","tokenFile":"/run/secrets/forge"}`, wantRepo: "fleet/avalanche"},
		{name: "repository from an scp-like URL",
			repo:  `"url":"forgejo@eagle.internal:fleet/avalanche.git","sshKeyFile":"/k","knownHostsFile":"/h"`,
			forge: `{"url":"https://git.internal","tokenFile":"/run/secrets/forge"}`, wantRepo: "fleet/avalanche"},
		{name: "repository given", repo: `"url":"/srv/fleet.git"`,
			forge: `{"url":"https://github.com","tokenFile":"/run/secrets/forge","repository":"octo/fleet"}`, wantRepo: "octo/fleet"},
		{name: "loopback http", repo: https,
			forge: `{"url":"http://127.0.0.1:3000","tokenFile":"/run/secrets/forge"}`, wantRepo: "fleet/avalanche"},
		{name: "repository not derivable", repo: `"url":"/srv/fleet.git"`,
			forge:   `{"url":"https://git.internal","tokenFile":"/run/secrets/forge"}`,
			wantErr: []string{`report.forge.repository is empty and repository.url "/srv/fleet.git" does not end in owner/name`}},
		{name: "everything wrong", repo: https,
			forge: `{"url":"http://git.internal","tokenFile":"secrets/forge","repository":"fleet"}`,
			wantErr: []string{`report.forge.url "http://git.internal" is plain http`, `report.forge.tokenFile "secrets/forge" must be an absolute path`,
				`report.forge.repository: "fleet" is not owner/name`}},
		{name: "no token, bad URL", repo: https, forge: `{"url":"git.internal"}`,
			wantErr: []string{"report.forge.url: \"git.internal\": scheme must be https", "report.forge.tokenFile is required"}},
		{name: "token without URL", repo: https, forge: `{"tokenFile":"/run/secrets/forge"}`,
			wantErr: []string{"report.forge.tokenFile is set but report.forge.url is empty"}},
		{name: "unknown key", repo: https, forge: `{"url":"https://git.internal","tokenFile":"/t","token":"x"}`,
			wantErr: []string{"report.forge.token: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := `{"version":1,"hostname":"eagle","repository":{` + tt.repo + `},"report":{"forge":` + tt.forge + `}}`
			c, err := Parse([]byte(b))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Parse(%s) = %v; want nil", b, err)
				}
				if c.Report.Forge.Repository != tt.wantRepo {
					t.Errorf("report.forge.repository = %q; want %q", c.Report.Forge.Repository, tt.wantRepo)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%s) = nil; want errors %q", b, tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Parse(%s) = %v; want it to contain %q", b, err, want)
				}
			}
		})
	}
}
