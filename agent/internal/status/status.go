// Package status holds the wire types the daemon serves and its clients read:
// `avalanche-agent status --json`, the local API and the network status
// endpoint all speak these.
package status

import (
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/lease"
	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
)

// States of the agent, as shown in Status.State.
const (
	Idle        = "idle"
	Fetching    = "fetching"
	Verifying   = "verifying"
	Evaluating  = "evaluating"
	Building    = "building"
	Activating  = "activating"
	Confirming  = "confirming"
	RollingBack = "rolling-back"
	Recovering  = "recovering"
	Failed      = "failed"
	Suspended   = "suspended"
	// Starting: the agent is back but its start-up work (the running
	// system's secrets, recovery) is not done yet; Stopping: told to stop,
	// it finishes or leaves the step in flight.
	Starting = "starting"
	Stopping = "stopping"
)

// Status is a snapshot of one host's agent.
type Status struct {
	Hostname      string            `json:"hostname"`
	FlakeOutput   string            `json:"flakeOutput"`
	Version       string            `json:"version"`
	State         string            `json:"state"`
	DaemonRunning bool              `json:"daemonRunning"`
	Suspended     bool              `json:"suspended"`
	Fetched       Fetched           `json:"fetched"`
	Deployed      *state.Deployment `json:"deployed"`
	Pending       *state.Pending    `json:"pending,omitempty"`
	// LastError is the last failure in plain words ("" when the last pass succeeded).
	LastError string         `json:"lastError"`
	Failure   *state.Failure `json:"failure,omitempty"`
	NextPoll  time.Time      `json:"nextPoll,omitzero"`
	// RebootNeeded is true when kernel, initrd or modules differ from the booted system.
	RebootNeeded  bool              `json:"rebootNeeded"`
	RebootReasons []string          `json:"rebootReasons,omitempty"`
	ExitNode      *ExitNode         `json:"exitNode,omitempty"`
	Passes        uint64            `json:"passes"`
	Refused       []state.BadCommit `json:"refused,omitempty"`
	// Drift is set while the running system is not the deployed one.
	Drift *state.Drift `json:"drift,omitempty"`
	// FailedUnits are the units that had already failed when the last
	// switch began: the host's trouble, never held against a commit.
	FailedUnits []string `json:"failedUnits,omitempty"`
	// Interrupted is the last deployment a stop or crash cut short.
	Interrupted *state.Interruption `json:"interrupted,omitempty"`
	// Flight is the deployment in progress, or the one a stop left open.
	Flight *Flight `json:"flight,omitempty"`
	// Waiting is set while a host in builder mode waits for a release.
	Waiting *Wait `json:"waiting,omitempty"`
	// Builder is the builder role's progress, on a host with builder.enable.
	Builder *Builder `json:"builder,omitempty"`
	// Forge is the commit-status reporter's view (report.forge only).
	Forge *Forge `json:"forge,omitempty"`
	// Rollout is the rollout gate's last decision (rollout.wave only).
	Rollout *rollout.Decision `json:"rollout,omitempty"`
	// Lease is the disruption budget's lease while a deployment wants or
	// holds it (rollout.group only).
	Lease *lease.View `json:"lease,omitempty"`
	// Store is the last check of the Nix store after an unclean shutdown,
	// when it found damage ("store damaged after …: N paths, repaired").
	Store string `json:"store,omitempty"`
}

// Flight is a deployment in progress: which step it is at.
type Flight struct {
	ID     uint64 `json:"id"`
	Commit string `json:"commit"`
	// Reason is commit, drift or rollback.
	Reason string `json:"reason"`
	// Step and Event are the last journaled: e.g. build, intent.
	Step    string    `json:"step"`
	Event   string    `json:"event"`
	Since   time.Time `json:"since"`
	Started time.Time `json:"started"`
	// Source is local or builder; Fallback is set when builder mode
	// evaluates locally because no release came in time.
	Source   string `json:"source,omitempty"`
	Fallback bool   `json:"fallback,omitempty"`
	// Release is the builder's release that names the target.
	Release *state.Release `json:"release,omitempty"`
	// Substitution is what the build step fetched so far (source builder).
	Substitution *Substitution `json:"substitution,omitempty"`
}

// Fetched is what the last fetch saw.
type Fetched struct {
	Commit string            `json:"commit"`
	Branch string            `json:"branch"`
	Time   time.Time         `json:"time,omitzero"`
	Heads  map[string]string `json:"heads,omitempty"`
}

// ExitNode is the Tailscale exit node role's view, as
// `avalanche-cloud exit-node-ensure` prints it after each pass.
type ExitNode struct {
	Advertised bool     `json:"advertised"`
	Approved   bool     `json:"approved"`
	Online     bool     `json:"online"`
	Repaired   []string `json:"repaired,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// Forge says whether this host's commit statuses reach the forge.
type Forge struct {
	// URL and Repository say where statuses go (no credentials).
	URL        string `json:"url"`
	Repository string `json:"repository"`
	// Queued counts statuses waiting to be sent.
	Queued int `json:"queued"`
	// LastSent is when the forge last accepted a status.
	LastSent time.Time `json:"lastSent,omitzero"`
	// Error is why the last attempt failed; empty once one succeeds.
	Error string `json:"error,omitempty"`
	// FailingSince is the first failed attempt since the last success.
	FailingSince time.Time `json:"failingSince,omitzero"`
	// NextAttempt is when the queue is tried again after a failure.
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	// Dropped counts statuses given up since the agent started: refused
	// by the forge as they are, or pushed out of a full queue.
	Dropped int `json:"dropped,omitempty"`
}

// SyncResult answers a sync request that waited for its pass.
type SyncResult struct {
	Pass   uint64 `json:"pass"`
	OK     bool   `json:"ok"`
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
}
