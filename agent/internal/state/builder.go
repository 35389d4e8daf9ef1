package state

import (
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/boot"
)

// Release is the builder's release a system came from (builder mode).
type Release struct {
	// ID is the release commit on the release branch.
	ID string `json:"id"`
	// Builder is the host that built it; Signer who signed the release.
	Builder string `json:"builder"`
	Signer  string `json:"signer,omitempty"`
	// Built is when the builder published it (the builder's clock).
	Built time.Time `json:"built,omitzero"`
}

// Awaiting is a commit that a host in builder mode waits for the
// builder's release of. It survives restarts, so a restart does not start
// the wait over.
type Awaiting struct {
	Commit string `json:"commit"`
	// Since is when this host first saw the commit without a release (wall
	// clock, for people).
	Since time.Time `json:"since"`
	// Boot is the same instant on the boot clock, which decides when
	// deploy.builderTimeout is over; after a reboot the wait counts afresh
	// from the first pass of the new boot.
	Boot boot.Instant `json:"boot"`
	// ReleaseHead is the head of the release branch as last fetched ("" when
	// the branch does not exist) and ReleaseMoved when this host saw it
	// move, on the boot clock: a builder whose branch does not move while
	// hosts wait looks down.
	ReleaseHead  string       `json:"releaseHead,omitempty"`
	ReleaseMoved boot.Instant `json:"releaseMoved,omitzero"`
	// Untrusted says why the release of Commit on the branch is not
	// trusted (unsigned, unknown key); "" when there is none at all.
	Untrusted string `json:"untrusted,omitempty"`
}
