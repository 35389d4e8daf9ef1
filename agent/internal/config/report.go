package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// Report says where the agent reports its deployments besides its own
// status and metrics.
type Report struct {
	Forge Forge `json:"forge"`
}

// Forge configures commit statuses on the forge (Forgejo, Gitea, GitHub):
// each deployment of a commit shows there as the status avalanche/<host>.
type Forge struct {
	// URL is the forge's base URL; it decides the API flavour (pkg/forge).
	// Empty: no reporting.
	URL string `json:"url,omitempty"`
	// TokenFile holds a token that may write commit statuses.
	TokenFile string `json:"tokenFile,omitempty"`
	// Repository is owner/name on the forge; by default the owner/name of
	// repository.url.
	Repository string `json:"repository,omitempty"`
}

// Enabled reports whether commit statuses are sent.
func (f Forge) Enabled() bool { return f.URL != "" }

// QueuePath is the forge reporter's durable queue.
func (c *Config) QueuePath() string { return c.StateDir + "/forge-queue.json" }

func (c *Config) setReportDefaults() {
	f := &c.Report.Forge
	if f.Enabled() && f.Repository == "" {
		f.Repository = repoName(c.Repository.URL)
	}
}

// repoName is the owner/name a repository URL ends in ("" when it has
// not exactly two path segments): https://git.internal/fleet/avalanche.git
// and forgejo@eagle.internal:fleet/avalanche.git give fleet/avalanche.
func repoName(raw string) string {
	path := raw
	if kind, err := RemoteKind(raw); err != nil || kind == "local" {
		return ""
	} else if kind == "ssh" && scpLikeRE.MatchString(raw) {
		_, path, _ = strings.Cut(raw, ":")
	} else if u, err := url.Parse(raw); err == nil {
		path = u.Path
	}
	name := strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	if forge.CheckRepository(name) != nil {
		return ""
	}
	return name
}

// validate checks report.forge; every message names its key.
func (f Forge) validate(repoURL string) []error {
	if !f.Enabled() {
		var errs []error
		for key, v := range map[string]string{"tokenFile": f.TokenFile, "repository": f.Repository} {
			if v != "" {
				errs = append(errs, fmt.Errorf("report.forge.%s is set but report.forge.url is empty: set the forge's base URL (https://git.example) or remove it", key))
			}
		}
		return errs
	}
	var errs []error
	if _, err := forge.ParseURL(f.URL); err != nil {
		errs = append(errs, fmt.Errorf("report.forge.url: %w", err))
	} else if u, _ := url.Parse(f.URL); u.Scheme == "http" && !loopback(u.Hostname()) {
		errs = append(errs, fmt.Errorf("report.forge.url %q is plain http, so the token would cross the network unencrypted: "+
			"use an https URL (plain http is accepted only for a forge on this machine: a loopback host)", f.URL))
	}
	switch {
	case f.TokenFile == "":
		errs = append(errs, errors.New("report.forge.url is set: report.forge.tokenFile is required (a file holding a forge token allowed to write commit statuses)"))
	case !filepath.IsAbs(f.TokenFile):
		errs = append(errs, fmt.Errorf("report.forge.tokenFile %q must be an absolute path", f.TokenFile))
	}
	switch {
	case f.Repository == "":
		errs = append(errs, fmt.Errorf("report.forge.repository is empty and repository.url %q does not end in owner/name: set report.forge.repository", repoURL))
	default:
		if err := forge.CheckRepository(f.Repository); err != nil {
			errs = append(errs, fmt.Errorf("report.forge.repository: %w", err))
		}
	}
	return errs
}
