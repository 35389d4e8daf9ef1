package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/metrics"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/agent/internal/webhook"
)

// networkServers builds the optional network endpoints (all off by
// default, meant for the tailnet): /metrics, /status and /webhook. Several
// may share one address. It wires the metrics hooks into d.
func networkServers(d *daemon.Daemon) (map[string]*http.ServeMux, error) {
	c := d.Config
	var observeWebhook func(code int)
	muxes := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
		}
		return muxes[addr]
	}
	if c.Metrics.Listen != "" {
		m := metrics.New(Version)
		if st, err := state.Load(c.StatePath()); err == nil {
			m.Restore(st)
		}
		d.Hooks.Phase = m.ObservePhase
		d.Hooks.Fetch = m.ObserveFetch
		d.Hooks.Pass = m.Update
		report := d.Hooks.Deployment // the forge's, when it reports
		d.Hooks.Deployment = func(ev daemon.DeploymentEvent) {
			if report != nil {
				report(ev)
			}
			if ev.Result != "pending" {
				m.ObserveDeployment(ev.Result)
			}
		}
		observeWebhook = m.ObserveWebhook
		if c.Webhook.Listen != "" {
			m.WebhookServed()
		}
		if c.Deploy.FromBuilder() {
			b := m.NewBuilder()
			d.Hooks.Substituted = b.ObserveSubstituted
			d.Hooks.Pass = func(s status.Status) { m.Update(s); b.Update(s) }
		}
		if c.Rollout.Gated() {
			r, pass := m.NewRollout(), d.Hooks.Pass
			d.Hooks.Pass = func(s status.Status) { pass(s); r.Update(s) }
		}
		if d.Lease != nil {
			m.NewLease(c.Rollout.Group, d.LeaseView)
		}
		mux(c.Metrics.Listen).Handle("GET /metrics", m.Handler())
	}
	if c.StatusListen != "" {
		mux(c.StatusListen).HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(Redact(d.Status(), c))
		})
	}
	if c.Webhook.Listen != "" {
		secret, err := os.ReadFile(c.Webhook.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("reading webhook secret: %w", err)
		}
		var h http.Handler = &webhook.Handler{Secret: []byte(strings.TrimSpace(string(secret))), Trigger: d.Trigger}
		if observeWebhook != nil {
			h = countCodes(h, observeWebhook)
		}
		mux(c.Webhook.Listen).Handle("POST /webhook", h)
	}
	return muxes, nil
}

// serveNetwork listens on every address until ctx ends.
func serveNetwork(ctx context.Context, muxes map[string]*http.ServeMux) error {
	for addr, mux := range muxes {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(os.Stderr, "serving %s: %v\n", addr, err)
			}
		}()
	}
	return nil
}

// Redact removes from a status what must not leave the host: paths of key
// and token files and of the secrets directory, wherever an error message
// mentions them, and the secrets generation names.
func Redact(s status.Status, c *config.Config) status.Status {
	clean := redactor(c)
	s.LastError = clean(s.LastError)
	if s.Failure != nil {
		f := *s.Failure
		f.Message = clean(f.Message)
		s.Failure = &f
	}
	if s.Deployed != nil {
		d := *s.Deployed
		d.SecretsGen, d.Error = "", clean(d.Error)
		s.Deployed = &d
	}
	if s.Pending != nil {
		p := *s.Pending
		p.SecretsGen, p.Previous = "", nil
		s.Pending = &p
	}
	refused := make([]state.BadCommit, len(s.Refused))
	for i, b := range s.Refused {
		b.Reason = clean(b.Reason)
		refused[i] = b
	}
	s.Refused = refused
	if s.ExitNode != nil {
		e := *s.ExitNode
		e.Error = clean(e.Error)
		s.ExitNode = &e
	}
	if s.Forge != nil {
		f := *s.Forge
		f.Error = clean(f.Error)
		s.Forge = &f
	}
	redactBuilder(&s, clean)
	return s
}

// redactor returns a function that replaces in a message every path that
// must not leave the host: key and token files, the secrets directory.
func redactor(c *config.Config) func(string) string {
	paths := []string{c.Repository.TokenFile, c.Repository.SSHKeyFile, c.Secrets.Dir, c.ExitNode.AuthKeyFile,
		c.ExitNode.APIKeyFile, c.HomeIP.TokenFile, c.Webhook.SecretFile, c.RuntimeDir,
		c.Builder.SigningKeyFile, c.Builder.ReleaseKeyFile, c.Report.Forge.TokenFile}
	paths = append(append(paths, c.Secrets.AgeKeyFiles...), c.Secrets.SSHKeyPaths...)
	return func(msg string) string {
		for _, p := range paths {
			if p != "" {
				msg = strings.ReplaceAll(msg, p, "<redacted>")
			}
		}
		return msg
	}
}

// redactBuilder cleans the builder-mode parts of a status.
func redactBuilder(s *status.Status, clean func(string) string) {
	if s.Waiting != nil {
		w := *s.Waiting
		w.Message, w.BuilderDown, w.Untrusted = clean(w.Message), clean(w.BuilderDown), clean(w.Untrusted)
		s.Waiting = &w
	}
	if s.Builder != nil {
		b := *s.Builder
		b.Error = clean(b.Error)
		b.Hosts = make(map[string]status.BuilderHost, len(s.Builder.Hosts))
		for name, h := range s.Builder.Hosts {
			h.Error = clean(h.Error)
			b.Hosts[name] = h
		}
		s.Builder = &b
	}
}

// countCodes calls observe with the status code of every answer of h.
func countCodes(h http.Handler, observe func(code int)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &codeRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		observe(rec.code)
	})
}

// codeRecorder remembers the status code written through it.
type codeRecorder struct {
	http.ResponseWriter
	code int
}

func (c *codeRecorder) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}
