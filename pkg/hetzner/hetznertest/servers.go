package hetznertest

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

func (s *Server) createServer(w http.ResponseWriter, r *http.Request) {
	var req schema.ServerCreateRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, loc, msg := s.resolveLocked(req)
	if msg != "" {
		writeError(w, 422, "invalid_input", msg)
		return
	}
	for _, v := range s.servers {
		if v.Name == req.Name {
			conflict(w, "server name")
			return
		}
	}
	id := s.newIDLocked()
	srv := &schema.Server{
		ID: id, Name: req.Name, Status: "initializing", Created: time.Now(),
		ServerType: st, Location: loc, Labels: labelsOf(req.Labels),
		Image: &schema.Image{Name: ptr(req.Image.Name)},
		PublicNet: schema.ServerPublicNet{
			IPv4: schema.ServerPublicNetIPv4{ID: id, IP: fmt.Sprintf("198.51.100.%d", id%250+1)},
			IPv6: schema.ServerPublicNetIPv6{ID: id, IP: fmt.Sprintf("2001:db8:%x::/64", id)},
		},
		PrivateNet: []schema.ServerPrivateNet{}, Volumes: []int64{}, LoadBalancers: []int64{},
	}
	s.servers[id] = srv
	for _, fw := range req.Firewalls {
		if f, ok := s.firewalls[fw.Firewall]; ok {
			s.applyLocked(f, srv)
		}
	}
	s.userData[id] = req.UserData
	s.serverKeys[id] = slices.Clone(req.SSHKeys)
	a := s.newActionLocked("create_server", "server", id)
	writeJSON(w, 201, schema.ServerCreateResponse{Server: *srv, Action: a, NextActions: []schema.Action{}})
}

// resolveLocked checks the server type and location the way the real API
// does, including the server type's availability in the location.
func (s *Server) resolveLocked(req schema.ServerCreateRequest) (schema.ServerType, schema.Location, string) {
	var st *schema.ServerType
	for i := range s.types {
		if s.types[i].Name == req.ServerType.Name || (req.ServerType.ID != 0 && s.types[i].ID == req.ServerType.ID) {
			st = &s.types[i]
		}
	}
	if st == nil {
		return schema.ServerType{}, schema.Location{}, "unknown server type"
	}
	for _, l := range st.Locations {
		if l.Name == req.Location {
			if !l.Available {
				return schema.ServerType{}, schema.Location{}, "server type not available in location"
			}
			for _, loc := range s.locations {
				if loc.Name == l.Name {
					return *st, loc, ""
				}
			}
		}
	}
	return schema.ServerType{}, schema.Location{}, "unknown location"
}

func (s *Server) deleteServer(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.servers[id]; !ok {
		writeError(w, 404, "not_found", "server not found")
		return
	}
	delete(s.servers, id)
	for _, f := range s.firewalls {
		f.AppliedTo = slices.DeleteFunc(f.AppliedTo, func(res schema.FirewallResource) bool {
			return res.Server != nil && res.Server.ID == id
		})
	}
	a := s.newActionLocked("delete_server", "server", id)
	writeJSON(w, 200, schema.ServerDeleteResponse{Action: a})
}

// UserData returns the user data the named server was created with.
func (s *Server) UserData(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, v := range s.servers {
		if v.Name == name {
			return s.userData[id], true
		}
	}
	return "", false
}

func ptr[T any](v T) *T { return &v }
