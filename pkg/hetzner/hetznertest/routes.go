package hetznertest

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ssh_keys", s.listSSHKeys)
	mux.HandleFunc("POST /ssh_keys", s.createSSHKey)
	mux.HandleFunc("DELETE /ssh_keys/{id}", s.deleteSSHKey)
	mux.HandleFunc("GET /firewalls", s.listFirewalls)
	mux.HandleFunc("POST /firewalls", s.createFirewall)
	mux.HandleFunc("DELETE /firewalls/{id}", s.deleteFirewall)
	mux.HandleFunc("POST /firewalls/{id}/actions/set_rules", s.setRules)
	mux.HandleFunc("POST /firewalls/{id}/actions/apply_to_resources", s.applyToResources)
	mux.HandleFunc("GET /servers", s.listServers)
	mux.HandleFunc("POST /servers", s.createServer)
	mux.HandleFunc("DELETE /servers/{id}", s.deleteServer)
	mux.HandleFunc("GET /server_types", s.listServerTypes)
	mux.HandleFunc("GET /locations", s.listLocations)
	mux.HandleFunc("GET /datacenters", s.listDatacenters)
	mux.HandleFunc("GET /actions", s.listActions)
	mux.HandleFunc("GET /actions/{id}", s.getAction)
}

// filterName keeps the items whose name equals the ?name= query, if any.
func filterName[T any](r *http.Request, items []T, name func(T) string) []T {
	want := r.URL.Query().Get("name")
	if want == "" {
		return items
	}
	return slices.DeleteFunc(items, func(v T) bool { return name(v) != want })
}

func sortedValues[T any](m map[int64]*T) []T {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		out = append(out, *m[id])
	}
	return out
}

func (s *Server) listSSHKeys(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	keys := filterName(r, sortedValues(s.sshKeys), func(k schema.SSHKey) string { return k.Name })
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"ssh_keys": keys, "meta": meta(len(keys))})
}

func (s *Server) createSSHKey(w http.ResponseWriter, r *http.Request) {
	var req schema.SSHKeyCreateRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.sshKeys {
		if k.Name == req.Name || k.PublicKey == req.PublicKey {
			conflict(w, "SSH key")
			return
		}
	}
	k := &schema.SSHKey{ID: s.newIDLocked(), Name: req.Name, PublicKey: req.PublicKey,
		Fingerprint: "fp:" + strconv.Itoa(len(req.PublicKey)), Labels: labelsOf(req.Labels), Created: time.Now()}
	s.sshKeys[k.ID] = k
	writeJSON(w, 201, schema.SSHKeyCreateResponse{SSHKey: *k})
}

func (s *Server) deleteSSHKey(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sshKeys[id]; !ok {
		writeError(w, 404, "not_found", "ssh key not found")
		return
	}
	delete(s.sshKeys, id)
	w.WriteHeader(204)
}

func (s *Server) listFirewalls(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	fws := filterName(r, sortedValues(s.firewalls), func(f schema.Firewall) string { return f.Name })
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"firewalls": fws, "meta": meta(len(fws))})
}

func rulesFromRequest(in []schema.FirewallRuleRequest) []schema.FirewallRule {
	out := []schema.FirewallRule{}
	for _, r := range in {
		out = append(out, schema.FirewallRule{Direction: r.Direction, SourceIPs: nonNil(r.SourceIPs),
			DestinationIPs: nonNil(r.DestinationIPs), Protocol: r.Protocol, Port: r.Port, Description: r.Description})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) createFirewall(w http.ResponseWriter, r *http.Request) {
	var req schema.FirewallCreateRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.firewalls {
		if f.Name == req.Name {
			conflict(w, "firewall name")
			return
		}
	}
	f := &schema.Firewall{ID: s.newIDLocked(), Name: req.Name, Labels: labelsOf(req.Labels),
		Created: time.Now(), Rules: rulesFromRequest(req.Rules), AppliedTo: []schema.FirewallResource{}}
	s.firewalls[f.ID] = f
	writeJSON(w, 201, schema.FirewallCreateResponse{Firewall: *f, Actions: []schema.Action{}})
}

func (s *Server) deleteFirewall(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.firewalls[id]
	if !ok {
		writeError(w, 404, "not_found", "firewall not found")
		return
	}
	if len(f.AppliedTo) > 0 {
		writeError(w, 409, "resource_in_use", "firewall is still applied")
		return
	}
	delete(s.firewalls, id)
	w.WriteHeader(204)
}

func (s *Server) setRules(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var req schema.FirewallActionSetRulesRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.firewalls[id]
	if !ok {
		writeError(w, 404, "not_found", "firewall not found")
		return
	}
	f.Rules = rulesFromRequest(req.Rules)
	a := s.newActionLocked("set_firewall_rules", "firewall", id)
	writeJSON(w, 201, schema.FirewallActionSetRulesResponse{Actions: []schema.Action{a}})
}

func (s *Server) applyToResources(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var req schema.FirewallActionApplyToResourcesRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.firewalls[id]
	if !ok {
		writeError(w, 404, "not_found", "firewall not found")
		return
	}
	var actions []schema.Action
	for _, res := range req.ApplyTo {
		if res.Server == nil || s.servers[res.Server.ID] == nil {
			writeError(w, 404, "not_found", "server not found")
			return
		}
		s.applyLocked(f, s.servers[res.Server.ID])
		actions = append(actions, s.newActionLocked("apply_firewall", "server", res.Server.ID))
	}
	writeJSON(w, 201, schema.FirewallActionApplyToResourcesResponse{Actions: actions})
}

func (s *Server) applyLocked(f *schema.Firewall, srv *schema.Server) {
	f.AppliedTo = append(f.AppliedTo, schema.FirewallResource{Type: "server", Server: &schema.FirewallResourceServer{ID: srv.ID}})
	srv.PublicNet.Firewalls = append(srv.PublicNet.Firewalls, schema.ServerFirewall{ID: f.ID, Status: "applied"})
}

func (s *Server) listServers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	srvs := filterName(r, sortedValues(s.servers), func(v schema.Server) string { return v.Name })
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"servers": srvs, "meta": meta(len(srvs))})
}

func (s *Server) listServerTypes(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ts := filterName(r, slices.Clone(s.types), func(v schema.ServerType) string { return v.Name })
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"server_types": ts, "meta": meta(len(ts))})
}

func (s *Server) listLocations(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ls := filterName(r, slices.Clone(s.locations), func(v schema.Location) string { return v.Name })
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"locations": ls, "meta": meta(len(ls))})
}

func (s *Server) listDatacenters(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ds := filterName(r, slices.Clone(s.dcs), func(v schema.Datacenter) string { return v.Name })
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"datacenters": ds, "meta": meta(len(ds))})
}

// listActions answers the poll of the action waiter; a polled action is
// finished from then on.
func (s *Server) listActions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []schema.Action{}
	for _, v := range r.URL.Query()["id"] {
		id, _ := strconv.ParseInt(v, 10, 64)
		if a, ok := s.actions[id]; ok {
			s.finishLocked(a)
			out = append(out, *a)
		}
	}
	writeJSON(w, 200, map[string]any{"actions": out, "meta": meta(len(out))})
}

func (s *Server) getAction(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.actions[id]
	if !ok {
		writeError(w, 404, "not_found", "action not found")
		return
	}
	s.finishLocked(a)
	writeJSON(w, 200, schema.ActionGetResponse{Action: *a})
}

func (s *Server) finishLocked(a *schema.Action) {
	if a.Status == "running" {
		now := time.Now()
		a.Status, a.Progress, a.Finished = "success", 100, &now
	}
}
