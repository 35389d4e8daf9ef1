// Package forge sets commit statuses on a forge: Forgejo and Gitea
// (POST /api/v1/repos/{owner}/{repo}/statuses/{sha}) and GitHub (POST
// /repos/{owner}/{repo}/statuses/{sha}), which take the same JSON. The
// flavour follows from the forge's base URL (ParseURL).
//
// Errors fall into three classes, matched with errors.Is: ErrUnavailable
// (the forge could not be reached or answered 5xx or 429: try again later),
// ErrUnauthorized (the token was refused: try again once it is fixed) and
// ErrRejected (the request itself is wrong, such as an unknown commit: it
// will never succeed as it is).
package forge

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// State is a commit status state understood by every flavour.
type State string

// The states a commit status can have.
const (
	Pending State = "pending"
	Success State = "success"
	Failure State = "failure"
	Error   State = "error"
)

// Valid reports whether s is one of the four states.
func (s State) Valid() bool {
	switch s {
	case Pending, Success, Failure, Error:
		return true
	}
	return false
}

// Status is one commit status, as the forges' create-status body has it.
type Status struct {
	State       State  `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
	Context     string `json:"context"`
}

// MaxDescription is the longest description GitHub accepts (in
// characters); longer ones are cut, for every flavour alike.
const MaxDescription = 140

// Flavour is the API a forge speaks.
type Flavour string

// The flavours.
const (
	// Gitea covers Gitea and Forgejo: the API lives under /api/v1.
	Gitea Flavour = "gitea"
	// GitHub covers github.com (API at api.github.com) and GitHub
	// Enterprise Server (API under /api/v3).
	GitHub Flavour = "github"
)

// Endpoint is where a forge's API lives and which flavour it speaks.
type Endpoint struct {
	Flavour Flavour
	// API is the base of the API's paths, without a trailing slash:
	// https://git.internal/api/v1, https://api.github.com.
	API string
}

// ParseURL turns a forge's base URL into its API endpoint:
// https://github.com (or https://api.github.com) is GitHub, a URL whose
// path ends in /api/v3 is GitHub Enterprise, anything else is Gitea or
// Forgejo, whose API is under /api/v1 (given or not).
func ParseURL(raw string) (Endpoint, error) {
	if raw == "" {
		return Endpoint{}, errors.New("is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return Endpoint{}, fmt.Errorf("%q: scheme must be https (or http)", raw)
	}
	if u.Host == "" {
		return Endpoint{}, fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, fmt.Errorf("%q: give only scheme, host and path (the token comes from its file)", redact(u))
	}
	path := strings.TrimRight(u.Path, "/")
	host := strings.ToLower(u.Hostname())
	switch {
	case host == "github.com" || host == "www.github.com":
		return Endpoint{Flavour: GitHub, API: "https://api.github.com"}, nil
	case host == "api.github.com", strings.HasSuffix(path, "/api/v3"):
		return Endpoint{Flavour: GitHub, API: u.Scheme + "://" + u.Host + path}, nil
	}
	path = strings.TrimSuffix(path, "/api/v1")
	return Endpoint{Flavour: Gitea, API: u.Scheme + "://" + u.Host + path + "/api/v1"}, nil
}

func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	return c.String()
}

var (
	repoRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	shaRE  = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
)

// CheckRepository checks an owner/name repository.
func CheckRepository(repo string) error {
	if !repoRE.MatchString(repo) || strings.Contains(repo, "..") {
		return fmt.Errorf("%q is not owner/name", repo)
	}
	return nil
}

// StatusPath is the path, below the API base, where statuses of commit sha
// of repository repo (owner/name) are created.
func StatusPath(repo, sha string) string {
	return "/repos/" + repo + "/statuses/" + sha
}
