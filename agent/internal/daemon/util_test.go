package daemon_test

import (
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return nixtest.Git(t, dir, args...)
}

// gitPush pushes the work repo's HEAD with refspec to the upstream and
// returns HEAD.
func gitPush(t *testing.T, h *host, refspec string) string {
	t.Helper()
	gitRun(t, h.up.Work, "push", "--quiet", "--force", h.up.Bare, refspec)
	return gitRun(t, h.up.Work, "rev-parse", "HEAD")
}
