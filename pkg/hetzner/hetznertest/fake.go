// Package hetznertest is a stateful in-memory fake of the parts of the
// Hetzner Cloud API that package hetzner uses: servers, firewalls and
// their set_rules/apply_to_resources actions, SSH keys, server types,
// locations, datacenters and actions. It speaks the wire format of
// hcloud-go's schema types over httptest, so the real hcloud-go client
// runs against it.
package hetznertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// Token is the bearer token the fake accepts.
const Token = "hcloud-test-token"

// Fault is an error response the fake returns instead of serving a request.
type Fault struct {
	Method     string // "" matches any method
	Path       string // prefix of the URL path; "" matches any path
	Status     int    // e.g. 500, 429
	Code       string // Hetzner error code, e.g. "rate_limit_exceeded"
	RetryAfter string // Retry-After header value, if any
	Times      int    // how many requests it answers; 0 means forever
}

// Server is the fake API. Create it with New; its zero value is not usable.
type Server struct {
	// URL is the endpoint to hand to hcloud.WithEndpoint.
	URL string

	mu         sync.Mutex
	nextID     int64
	calls      []string
	faults     []*Fault
	servers    map[int64]*schema.Server
	firewalls  map[int64]*schema.Firewall
	sshKeys    map[int64]*schema.SSHKey
	actions    map[int64]*schema.Action
	userData   map[int64]string
	serverKeys map[int64][]int64
	types      []schema.ServerType
	locations  []schema.Location
	dcs        []schema.Datacenter
}

// New starts a fake on loopback with locations fsn1, nbg1, hel1 and ash,
// and server types cpx11 (not available in ash) and cx22 (everywhere).
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		nextID:     1000,
		servers:    map[int64]*schema.Server{},
		firewalls:  map[int64]*schema.Firewall{},
		sshKeys:    map[int64]*schema.SSHKey{},
		actions:    map[int64]*schema.Action{},
		userData:   map[int64]string{},
		serverKeys: map[int64][]int64{},
	}
	s.seed()
	hs := httptest.NewServer(s.handler())
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

func (s *Server) seed() {
	for i, n := range []string{"fsn1", "nbg1", "hel1", "ash"} {
		s.locations = append(s.locations, schema.Location{ID: int64(i + 1), Name: n, NetworkZone: "eu-central"})
	}
	avail := func(names ...string) []schema.ServerTypeLocation {
		var out []schema.ServerTypeLocation
		for _, l := range s.locations {
			out = append(out, schema.ServerTypeLocation{ID: l.ID, Name: l.Name, Available: slices.Contains(names, l.Name)})
		}
		return out
	}
	s.types = []schema.ServerType{
		{ID: 22, Name: "cpx11", Cores: 2, Memory: 2, Disk: 40, Architecture: "x86", Locations: avail("fsn1", "nbg1", "hel1")},
		{ID: 104, Name: "cx22", Cores: 2, Memory: 4, Disk: 40, Architecture: "x86", Locations: avail("fsn1", "nbg1", "hel1", "ash")},
	}
	for _, l := range s.locations {
		s.dcs = append(s.dcs, schema.Datacenter{ID: l.ID, Name: l.Name + "-dc1", Location: l})
	}
}

// AddFault makes the fake answer matching requests with an error.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Calls returns every request served so far as "METHOD /path".
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Mutations returns the calls that are not GETs.
func (s *Server) Mutations() []string {
	var out []string
	for _, c := range s.Calls() {
		if !strings.HasPrefix(c, "GET ") {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// Firewall returns the firewall with that name.
func (s *Server) Firewall(name string) (schema.Firewall, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.firewalls {
		if f.Name == name {
			return *f, true
		}
	}
	return schema.Firewall{}, false
}

// ServerNamed returns the server with that name.
func (s *Server) ServerNamed(name string) (schema.Server, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.servers {
		if v.Name == name {
			return *v, true
		}
	}
	return schema.Server{}, false
}

// SSHKey returns the SSH key with that name.
func (s *Server) SSHKey(name string) (schema.SSHKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.sshKeys {
		if k.Name == name {
			return *k, true
		}
	}
	return schema.SSHKey{}, false
}

// Counts returns how many servers, firewalls and SSH keys exist.
func (s *Server) Counts() (servers, firewalls, sshKeys int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.servers), len(s.firewalls), len(s.sshKeys)
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, r.Method+" "+r.URL.Path)
		f := s.matchFaultLocked(r)
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+Token {
			writeError(w, http.StatusUnauthorized, "unauthorized", "unable to authenticate")
			return
		}
		if f != nil {
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			writeError(w, f.Status, f.Code, "injected fault")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) matchFaultLocked(r *http.Request) *Fault {
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.Path) {
			if f.Times > 0 {
				if f.Times--; f.Times == 0 {
					s.faults = slices.Delete(s.faults, i, i+1)
				}
			}
			return f
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	if code == "" {
		code = "service_error"
	}
	writeJSON(w, status, schema.ErrorResponse{Error: schema.Error{Code: code, Message: msg}})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_input", err.Error())
		return false
	}
	return true
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_input", "bad id")
	}
	return id, err == nil
}

func meta(n int) schema.Meta {
	return schema.Meta{Pagination: &schema.MetaPagination{Page: 1, PerPage: 50, LastPage: 1, TotalEntries: n}}
}

// newActionLocked records an action that is running until first polled.
func (s *Server) newActionLocked(command, typ string, ids ...int64) schema.Action {
	s.nextID++
	a := &schema.Action{ID: s.nextID, Status: "running", Command: command, Started: time.Now()}
	for _, id := range ids {
		a.Resources = append(a.Resources, schema.ActionResourceReference{ID: id, Type: typ})
	}
	s.actions[a.ID] = a
	return *a
}

func (s *Server) newIDLocked() int64 {
	s.nextID++
	return s.nextID
}

func labelsOf(p *map[string]string) map[string]string {
	if p == nil {
		return map[string]string{}
	}
	return *p
}

func conflict(w http.ResponseWriter, what string) {
	writeError(w, http.StatusConflict, "uniqueness_error", fmt.Sprintf("%s is already used", what))
}
