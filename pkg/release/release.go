// Package release is the builder's signed statement "commit C builds, for
// each host, this store path", and how hosts find and check it.
//
// A builder publishes releases on a branch of the fleet repository
// (Branch), one commit per release: its tree holds one file, release.json,
// and the commit carries an SSH signature in the namespace Namespace, so a
// release key cannot sign deployable commits and a commit key cannot sign
// releases. Hosts fetch that branch in the same ref advertisement as main,
// find the release for the exact commit they verified, check its signature
// against their allowed signers under the builder's principal, and take the
// store path named for them. The package never logs; errors wrap the
// sentinels below.
package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Branch is the branch releases are published on, next to main.
const Branch = "avalanche/releases"

// Namespace is the sshsig namespace release signatures are made in.
const Namespace = "avalanche-release"

// File is the name of the release document in a release commit's tree.
const File = "release.json"

// Version is the release document format this package writes and reads.
const Version = 1

// Failure classes. Every error from Find and Release.For that belongs to
// one of them wraps it; IsCommitFault tells the daemon which to refuse.
// ErrNotYet and ErrUntrusted are never the commit's fault: anyone who can
// push may publish a release, so one that is not trusted says nothing
// about the commit; the host waits for the builder's.
var (
	// ErrNotYet means no release for the commit is on the branch yet: the
	// builder is still working, late or down. Wait, or evaluate locally.
	ErrNotYet = errors.New("no release for this commit yet")
	// ErrUntrusted means the release is unsigned or its signature was not
	// made by a trusted builder key (a forgery, or a key this host does not
	// trust yet): ignored, the host waits for a trusted release.
	ErrUntrusted = errors.New("release not signed by a trusted builder")
	// ErrInvalid means the release does not fit this host: malformed, for
	// another commit, missing this host, or naming a path that is not this
	// host's system.
	ErrInvalid = errors.New("release invalid for this host")
	// ErrFailed means the builder found that the commit does not evaluate
	// or build for this host.
	ErrFailed = errors.New("builder could not build this commit")
)

// IsCommitFault reports whether err says that the trusted builder found
// this commit cannot be deployed on this host: refuse the commit, do not
// retry it. Only a trusted release can say so (ErrUntrusted is not one).
func IsCommitFault(err error) bool {
	return !errors.Is(err, ErrUntrusted) && (errors.Is(err, ErrInvalid) || errors.Is(err, ErrFailed))
}

// Release is one release document.
type Release struct {
	Version int `json:"version"`
	// Commit is the full hash of the main commit that was built.
	Commit string `json:"commit"`
	// Builder names the host that built it.
	Builder string    `json:"builder"`
	Time    time.Time `json:"time"`
	// Error, when set, says the commit could not be evaluated at all
	// (e.g. nixosConfigurations does not evaluate); Hosts is then empty.
	Error string `json:"error,omitempty"`
	// Hosts maps each nixosConfigurations output to its system.
	Hosts map[string]Host `json:"hosts"`
}

// Host is one host's system in a release.
type Host struct {
	// System is the Nix system, e.g. aarch64-linux.
	System  string `json:"system,omitempty"`
	DrvPath string `json:"drvPath,omitempty"`
	OutPath string `json:"outPath,omitempty"`
	// Error, when set, says why this host's system could not be evaluated
	// or built at this commit; the paths are then empty.
	Error string `json:"error,omitempty"`
}

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Decode parses and checks a release document.
func Decode(b []byte) (Release, error) {
	var r Release
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Release{}, fmt.Errorf("%w: decoding %s: %w", ErrInvalid, File, err)
	}
	if r.Version != Version {
		return Release{}, fmt.Errorf("%w: %s version %d; this agent reads version %d", ErrInvalid, File, r.Version, Version)
	}
	if !commitRE.MatchString(r.Commit) {
		return Release{}, fmt.Errorf("%w: commit %q is not a full commit hash", ErrInvalid, r.Commit)
	}
	return r, nil
}

// Encode returns the release document, indented for people reading the branch.
func (r Release) Encode() ([]byte, error) {
	r.Version = Version
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
