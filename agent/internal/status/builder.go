package status

import (
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
)

// States of builder mode, as shown in Status.State.
const (
	// Waiting: a host in builder mode waits for the builder's release of
	// the commit it fetched (Status.Waiting says since when and why).
	Waiting = "waiting"
	// Releasing: the builder role evaluates and builds the fleet's systems
	// for a commit and publishes their release (Status.Builder).
	Releasing = "releasing"
)

// Wait is a host in builder mode waiting for the builder's release of a
// commit, which the pass did not deploy yet.
type Wait struct {
	Commit string `json:"commit"`
	// Since is when this host first saw the commit without a release.
	Since time.Time `json:"since"`
	// Waited is how long the wait lasts on this boot's clock, what
	// deploy.builderTimeout is measured against.
	Waited time.Duration `json:"waited"`
	// Timeout is deploy.builderTimeout, Fallback deploy.builderFallback
	// (evaluate or wait).
	Timeout  time.Duration `json:"timeout"`
	Fallback string        `json:"fallback"`
	// BuilderDown says why the builder looks down; "" when it does not.
	BuilderDown string `json:"builderDown,omitempty"`
	// Untrusted says why the release of Commit that the branch holds is
	// ignored (not signed by a trusted builder key); "" when there is none.
	Untrusted string `json:"untrusted,omitempty"`
	// Message says all of it in plain words.
	Message string `json:"message"`
}

// Substitution counts what the build step of a host in builder mode
// fetches from the fleet cache.
type Substitution struct {
	Paths     int `json:"paths"`
	PathsDone int `json:"pathsDone"`
	// Bytes are compressed download sizes when the cache reports them.
	Bytes     int64 `json:"bytes"`
	BytesDone int64 `json:"bytesDone"`
}

// Builder is the builder role's progress (builder.enable): the commit it
// builds or last built, and each host's state.
type Builder struct {
	// Commit is the commit being built or last built.
	Commit   string    `json:"commit,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Release is the release commit once published.
	Release string `json:"release,omitempty"`
	// Error is why the last attempt stopped short of publishing.
	Error string                 `json:"error,omitempty"`
	Hosts map[string]BuilderHost `json:"hosts,omitempty"`
}

// BuilderHost is one host's state on the builder.
type BuilderHost struct {
	// Phase is evaluating, building, copying, unchanged, done, failed or waiting.
	Phase   string    `json:"phase"`
	Since   time.Time `json:"since"`
	OutPath string    `json:"outPath,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// SourceWords says where a system came from: "release of <commit> from
// <builder>", "evaluated here", or "evaluated here: no release in time".
func SourceWords(commit, source string, fallback bool, rel *state.Release) string {
	switch {
	case rel != nil:
		return "release of " + short(commit) + " from " + rel.Builder
	case fallback:
		return "evaluated here: no release from the builder in time (deploy.builderFallback = evaluate)"
	case source == "builder":
		return "the builder's release of " + short(commit)
	}
	return "evaluated here"
}

func short(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
