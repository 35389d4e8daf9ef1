package forgetest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// combined answers GET .../commits/{ref}/status as Gitea's
// GetCombinedCommitStatusByRef: the commit must exist (404 "object does
// not exist" otherwise; a short id of 7 digits or more names it); the
// latest status of each context (the highest id) makes one entry; pages
// of limit entries (default 30, at most 50; page and limit below 1 are
// the defaults) are cut from the newest entries first, and each page is
// listed oldest first; total_count is the length of the page and
// X-Total-Count the number of contexts, set even on an empty page; the
// state combines the page's states (combine).
func (s *Server) combined(w http.ResponseWriter, r *http.Request, repo, ref string) {
	if !s.access(w, r, repo, false) {
		return
	}
	sha, ok := s.resolve(ref, 7)
	if !ok {
		s.apiError(w, http.StatusNotFound, "object does not exist [id: "+ref+", rel_path: ]")
		return
	}
	latest := s.latest(sha)
	page, limit := atoi(r.URL.Query().Get("page"), 1), atoi(r.URL.Query().Get("limit"), 30)
	limit = min(limit, 50)
	from := min((page-1)*limit, len(latest))
	to := min(from+limit, len(latest))
	onPage := latest[from:to]
	sort.Slice(onPage, func(i, j int) bool { return onPage[i].ID < onPage[j].ID })
	var statuses []map[string]any // null when none, as Gitea sends
	for _, rec := range onPage {
		statuses = append(statuses, s.statusJSON(rec))
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(latest)))
	commitURL := s.repoURL() + "/commits/" + url.PathEscape(sha)
	writeJSON(w, http.StatusOK, map[string]any{
		"state": combine(onPage), "sha": sha, "total_count": len(onPage), "statuses": statuses,
		"url": commitURL + "/status", "commit_url": commitURL, "repository": s.repositoryJSON(),
	})
}

// repositoryJSON is the start of Gitea's Repository (it sends some fifty
// fields more).
func (s *Server) repositoryJSON() map[string]any {
	owner, name, _ := strings.Cut(s.Repository, "/")
	return map[string]any{"id": 1, "owner": map[string]any{"login": owner}, "name": name,
		"full_name": s.Repository, "private": true}
}

// latest is the newest received status of each context of sha, newest
// first.
func (s *Server) latest(sha string) []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []Received
	for i := len(s.received) - 1; i >= 0; i-- {
		rec := s.received[i]
		if rec.SHA != sha || seen[rec.Status.Context] {
			continue
		}
		seen[rec.Status.Context] = true
		out = append(out, rec)
	}
	return out
}

// combine is Gitea's CommitStatusStates.Combine (the GitHub rule, and a
// warning fails too): failure when any state is error, failure or
// warning; success when every state is success or skipped; pending
// otherwise, an unknown state or an empty page included.
func combine(page []Received) forge.State {
	success := 0
	for _, rec := range page {
		switch rec.Status.State {
		case forge.Error, forge.Failure, "warning":
			return forge.Failure
		case forge.Success, "skipped":
			success++
		}
	}
	if success > 0 && success == len(page) {
		return forge.Success
	}
	return forge.Pending
}

func atoi(v string, def int) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return def
	}
	return n
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
