package cli

import (
	"fmt"

	"github.com/avalanche-fleet/avalanche/agent/internal/builder"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// BuilderMode returns the host side of builder mode (deploy.source
// "builder") and the builder role (builder.enable) that c asks for; nil
// for what it does not ask for. Both share the daemon's nix and repository.
func BuilderMode(c *config.Config, nix *rebuild.Nix, repo *gitsync.Repo) (daemon.Source, daemon.Releaser, error) {
	var (
		src daemon.Source
		rel daemon.Releaser
	)
	if c.Deploy.FromBuilder() {
		s, err := builder.NewSource(c, nix)
		if err != nil {
			return nil, nil, err
		}
		src = s
	}
	if c.Builder.Enable {
		b, err := builder.New(c, repo, nix)
		if err != nil {
			return nil, nil, fmt.Errorf("builder role: %w", err)
		}
		rel = b
	}
	return src, rel, nil
}
