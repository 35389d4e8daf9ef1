package forgetest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// access is what a request may do, decided as Gitea's middlewares do, in
// their order: the token (401 for one the forge does not know), its scope
// (403 when writing with a read-only token), then the repository, which
// is private (404 when unknown, or asked for without a token). It answers
// the refusals itself and reports whether the request may go on.
func (s *Server) access(w http.ResponseWriter, r *http.Request, repo string, write bool) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	known := (scheme == "token" || scheme == "Bearer") && (token == s.token || token == s.readOnlyToken)
	switch {
	case r.Header.Get("Authorization") != "" && !known:
		s.apiError(w, http.StatusUnauthorized, "invalid username, password or token")
	case write && token == s.readOnlyToken && known:
		s.apiError(w, http.StatusForbidden, "token does not have at least one of required scope(s), required=[write:repository], token scope=read:repository")
	case !known || !strings.EqualFold(repo, s.Repository):
		s.apiError(w, http.StatusNotFound, "not found")
	default:
		return true
	}
	return false
}

// create answers POST .../statuses/{sha} as Gitea's NewCommitStatus: the
// body is bound first (422 when it cannot be), then the commit looked up
// (a 500 with no message when it does not exist: Gitea does not tell a
// user who is not an administrator why), then the status stored with its
// fields trimmed. Gitea takes any state, even one it does not know.
func (s *Server) create(w http.ResponseWriter, r *http.Request, repo, sha string) {
	if !s.access(w, r, repo, true) {
		return
	}
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	opt, msg := bind(r)
	if msg != "" {
		s.apiError(w, http.StatusUnprocessableEntity, msg)
		return
	}
	full, ok := s.resolve(sha, 4)
	if !ok {
		s.apiError(w, http.StatusInternalServerError, "")
		return
	}
	opt.Context = strings.TrimSpace(opt.Context)
	opt.Description = strings.TrimSpace(opt.Description)
	opt.TargetURL = strings.TrimSpace(opt.TargetURL)
	s.accept(w, Received{SHA: full, Status: opt, Scheme: scheme})
}

// bind decodes a CreateStatusOption as Gitea's binding does: JSON, or a
// form, by Content-Type; the message of a refusal is Gitea's.
func bind(r *http.Request) (forge.Status, string) {
	var opt forge.Status
	ct := r.Header.Get("Content-Type")
	switch {
	case ct == "":
		return opt, "[]: Empty Content-Type"
	case strings.Contains(ct, "json"):
		if err := json.NewDecoder(r.Body).Decode(&opt); err != nil {
			return opt, "[]: " + goTypes.Replace(err.Error())
		}
	case strings.Contains(ct, "form-urlencoded"):
		if err := r.ParseForm(); err != nil {
			return opt, "[]: " + err.Error()
		}
		opt = forge.Status{State: forge.State(r.PostForm.Get("state")), Context: r.PostForm.Get("context"),
			TargetURL: r.PostForm.Get("target_url"), Description: r.PostForm.Get("description")}
	default:
		return opt, "[]: Unsupported Content-Type"
	}
	return opt, ""
}

// goTypes names Gitea's types in encoding/json's messages.
var goTypes = strings.NewReplacer("Go value of type forge.Status", "Go value of type structs.CreateStatusOption",
	"Status.state of type forge.State", "CreateStatusOption.state of type commitstatus.CommitStatusState")

var hexRE = regexp.MustCompile(`^[0-9a-f]+$`)

// resolve finds the commit whose id starts with ref (at least minLen hex
// digits; git looks it up, as Gitea does) and returns its full id.
func (s *Server) resolve(ref string, minLen int) (string, bool) {
	if len(ref) < minLen || !hexRE.MatchString(ref) {
		return "", false
	}
	out, err := exec.Command("git", "-C", s.gitDir, "rev-parse", "--verify", "--quiet", ref+"^{commit}").Output()
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(out)), true
}

// accept stores a status with the next index of its commit, which is the
// id Gitea shows (1, 2, … for each commit).
func (s *Server) accept(w http.ResponseWriter, rec Received) {
	rec.Time = time.Now().UTC().Truncate(time.Second)
	s.mu.Lock()
	for _, x := range s.received {
		if x.SHA == rec.SHA {
			rec.ID = max(rec.ID, x.ID)
		}
	}
	rec.ID++
	s.received = append(s.received, rec)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.statusJSON(rec))
}

// statusJSON is Gitea's CommitStatus for rec.
func (s *Server) statusJSON(rec Received) map[string]any {
	at := rec.Time.Format(time.RFC3339)
	return map[string]any{
		"id": rec.ID, "status": rec.Status.State, "target_url": rec.Status.TargetURL, "description": rec.Status.Description,
		"url":     s.repoURL() + "/statuses/" + url.PathEscape(rec.SHA),
		"context": rec.Status.Context, "creator": map[string]any{"id": 2, "login": "avalanche"},
		"created_at": at, "updated_at": at,
	}
}

func (s *Server) repoURL() string { return s.URL + "/api/v1/repos/" + s.Repository }

// commit answers GET .../git/commits/{sha} as far as a client can need it
// to tell whether the forge has a commit: 404 "commit doesn't exist" or
// the commit's id and URL (Gitea sends much more).
func (s *Server) commit(w http.ResponseWriter, r *http.Request, repo, sha string) {
	if r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	if !s.access(w, r, repo, false) {
		return
	}
	full, ok := s.resolve(sha, 4)
	if !ok {
		s.apiError(w, http.StatusNotFound, "commit doesn't exist: "+sha)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sha": full, "url": s.repoURL() + "/git/commits/" + full})
}
