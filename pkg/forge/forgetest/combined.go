package forgetest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// combinedRoute matches /api/v1/repos/{owner}/{repo}/commits/{sha}/status.
func combinedRoute(path string) (owner, repo, sha string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(path, "/api/v1/repos/"), "/")
	if !strings.HasPrefix(path, "/api/v1/repos/") || len(parts) != 5 || parts[2] != "commits" || parts[4] != "status" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[3], parts[0] != "" && parts[1] != "" && parts[3] != ""
}

// combined answers as Forgejo's GetCombinedCommitStatusByRef
// (routers/api/v1/repo/status.go, convert.ToCombinedStatus): the latest
// status of each context (the one with the highest id), newest first,
// paged by page and limit (default 30, at most 50); total_count is the
// length of the page and X-Total-Count the number of contexts; state is
// the worst of the page (error > failure > pending > success). No status
// at all (an unknown commit too) is a 200 with an empty CombinedStatus.
func (s *Server) combined(w http.ResponseWriter, r *http.Request, repo, sha string) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", "GET")
		s.apiError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	case (scheme != "token" && scheme != "Bearer") || (token != s.token && token != s.readOnlyToken):
		s.apiError(w, http.StatusUnauthorized, "user does not exist [uid: 0, name: ]")
		return
	case !strings.EqualFold(repo, s.Repository):
		s.apiError(w, http.StatusNotFound, "The target couldn't be found.")
		return
	}
	latest := s.latest(sha)
	page, limit := atoi(r.URL.Query().Get("page"), 1), atoi(r.URL.Query().Get("limit"), 30)
	limit = min(limit, 50)
	from := min((page-1)*limit, len(latest))
	to := min(from+limit, len(latest))
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	if from == to {
		// No status on this page (or an unknown commit, which Forgejo
		// does not look up): an empty CombinedStatus, no count header.
		writeJSON(w, http.StatusOK, map[string]any{"state": "", "sha": "", "total_count": 0, "statuses": nil,
			"repository": nil, "commit_url": "", "url": ""})
		return
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(latest)))
	writeJSON(w, http.StatusOK, map[string]any{
		"state": worst(latest[from:to]), "sha": sha, "total_count": to - from, "statuses": latest[from:to],
		"url":        s.URL + "/api/v1/repos/" + s.Repository + "/commits/" + sha + "/status",
		"commit_url": s.URL + "/api/v1/repos/" + s.Repository + "/git/commits/" + sha,
	})
}

// latest is the newest received status of each context of sha, as
// Forgejo's CommitStatus JSON, newest first.
func (s *Server) latest(sha string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []map[string]any
	for i := len(s.received) - 1; i >= 0; i-- {
		rec := s.received[i]
		if rec.SHA != sha || seen[rec.Status.Context] {
			continue
		}
		seen[rec.Status.Context] = true
		out = append(out, s.statusJSON(i+1, rec))
	}
	return out
}

func (s *Server) statusJSON(id int, rec Received) map[string]any {
	at := rec.Time.Format("2006-01-02T15:04:05Z07:00")
	return map[string]any{
		"id": id, "status": rec.Status.State, "target_url": rec.Status.TargetURL, "description": rec.Status.Description,
		"url":     s.URL + "/api/v1/repos/" + s.Repository + "/statuses/" + rec.SHA,
		"context": rec.Status.Context, "creator": map[string]any{"id": 1, "login": "avalanche"},
		"created_at": at, "updated_at": at,
	}
}

func worst(statuses []map[string]any) forge.State {
	rank := map[forge.State]int{forge.Success: 0, forge.Pending: 1, "warning": 1, forge.Failure: 2, forge.Error: 3}
	if len(statuses) == 0 {
		return forge.Pending
	}
	w := forge.Success
	for _, st := range statuses {
		if state := st["status"].(forge.State); rank[state] > rank[w] {
			w = state
		}
	}
	return w
}

func atoi(v string, def int) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return def
	}
	return n
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
