package report

import (
	"slices"
	"strconv"
	"strings"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// Deployment turns a deployment event into a commit status
// (daemon.Hooks.Deployment):
//
//   - pending → pending;
//   - deployed, up-to-date → success;
//   - failed, rolled-back with a commit fault → failure, with the reason;
//   - failed, rolled-back for transient or host trouble → error: the commit
//     has no verdict and is tried again, but the host is in trouble;
//   - interrupted (a stop) → nothing: the pending status stays true, since
//     the next start resumes or retries the deployment and reports then;
//   - superseded (a newer commit pre-empted it) → a pending status not yet
//     sent is withdrawn (nobody saw it); one already sent is replaced by
//     pending "superseded", so the forge does not claim it is still being
//     deployed. Pending is the only state without a verdict.
func (r *Reporter) Deployment(ev daemon.DeploymentEvent) {
	if ev.Result == "superseded" {
		r.superseded(ev.Commit)
		return
	}
	s, ok := r.statusFor(ev)
	if !ok {
		return
	}
	r.Add(ev.Commit, s)
}

func (r *Reporter) statusFor(ev daemon.DeploymentEvent) (forge.Status, bool) {
	s := forge.Status{Context: r.Context()}
	where := ""
	if ev.Branch != "" && ev.Branch != r.Main {
		where = " (branch " + ev.Branch + ")"
	}
	verdict := fault.Class(ev.Class).Verdict()
	switch {
	case ev.Result == "pending":
		s.State, s.Description = forge.Pending, pendingWords(ev.Reason)+where
	case ev.Result == "deployed":
		s.State, s.Description = forge.Success, "deployed"+where
	case ev.Result == "up-to-date":
		s.State, s.Description = forge.Success, "up to date: this commit does not change the system"+where
	case ev.Result == "failed" || ev.Result == "rolled-back":
		s.State, s.Description = forge.Failure, failureWords(ev.Result, verdict)+ev.Error
		if !verdict {
			s.State = forge.Error
		}
		if ev.Class == string(fault.Shutdown) {
			return s, false // a stop: the next start reports
		}
	default: // interrupted, and anything newer: no verdict
		return s, false
	}
	return s, true
}

func pendingWords(reason string) string {
	switch reason {
	case "drift":
		return "repairing drift: activating this commit again"
	case "rollback":
		return "rolling back to this commit"
	}
	return "deploying"
}

func failureWords(result string, verdict bool) string {
	w := "failed: "
	if result == "rolled-back" {
		w = "rolled back: "
	}
	if !verdict {
		w = strings.TrimSuffix(w, ": ") + ", will retry: "
	}
	return w
}

// superseded withdraws a pending status of commit that was never sent (nor
// is being sent), or says the commit was superseded when the forge shows
// it pending.
func (r *Reporter) superseded(commit string) {
	r.mu.Lock()
	r.init()
	e, queued := r.q.find(commit, r.Context())
	if queued && e.Status.State == forge.Pending && e.Seq != r.inflight {
		r.q.remove(func(x entry) bool { return x.Seq == e.Seq })
		err := r.q.save()
		r.mu.Unlock()
		r.logSave(err, commit, e.Status)
		return
	}
	r.mu.Unlock()
	r.Add(commit, forge.Status{State: forge.Pending, Context: r.Context(),
		Description: "superseded: a newer commit was deployed before this one"})
}

// BuilderStarted queues the builder role's pending status for commit
// (context avalanche/builder) while it builds the fleet.
func (r *Reporter) BuilderStarted(commit string) {
	r.Add(commit, forge.Status{State: forge.Pending, Context: BuilderContext, Description: "building every host's system"})
}

// BuilderDone queues the builder role's outcome for commit: success when
// every host built, failure naming those that did not (hosts maps each to
// its error, "" when built) or saying why the fleet does not evaluate at
// all (evalErr), error when the release itself failed (no verdict on the
// commit: the builder tries again).
func (r *Reporter) BuilderDone(commit string, hosts map[string]string, evalErr string, err error) {
	s := forge.Status{Context: BuilderContext}
	var failed []string
	for name, e := range hosts {
		if e != "" {
			failed = append(failed, name)
		}
	}
	slices.Sort(failed)
	built := plural(len(hosts)-len(failed), "host")
	switch {
	case err != nil:
		s.State, s.Description = forge.Error, "release failed, will retry: "+err.Error()
	case evalErr != "":
		s.State, s.Description = forge.Failure, "the fleet does not evaluate: "+evalErr
	case len(failed) == 0:
		s.State, s.Description = forge.Success, built+" built and cached"
	default:
		s.State, s.Description = forge.Failure, built+" built; failed: "+strings.Join(failed, ", ")
	}
	r.Add(commit, s)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
