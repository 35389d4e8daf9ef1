package cli

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/avalanche-fleet/avalanche/agent/internal/client"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/notify"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// netHost is an agent with its network endpoints on loopback, wired by
// NewDaemon and networkServers as `avalanche-agent run` wires them.
type netHost struct {
	cfg  *config.Config
	addr string
	up   *nixtest.Repo
	opts nixtest.FlakeOptions
	stop func()
}

func startNetHost(t *testing.T, dir string, up *nixtest.Repo, url string) *netHost {
	t.Helper()
	h := &netHost{addr: freeAddr(t), up: up}
	secret := writeFile(t, dir, "webhook-secret", "hunter2\n")
	token := writeFile(t, dir, "git-token", "git-token-value\n")
	c := map[string]any{
		"version": 1, "hostname": "nethost", "flakeOutput": "fleet", "pollInterval": "1h",
		"repository": map[string]any{"url": url, "tokenFile": token, "allowInsecureHTTP": true},
		"stateDir":   filepath.Join(dir, "state"), "runtimeDir": filepath.Join(dir, "run"),
		"metrics": map[string]any{"listen": h.addr}, "statusListen": h.addr,
		"webhook": map[string]any{"listen": h.addr, "secretFile": secret},
		"deploy": map[string]any{"profile": filepath.Join(dir, "profile", "system"), "currentSystem": filepath.Join(dir, "current"),
			"bootedSystem": filepath.Join(dir, "booted"), "systemdRun": false, "nixArgs": nixtest.Args()},
	}
	b, _ := json.Marshal(c)
	var err error
	if h.cfg, err = config.Load(writeFile(t, dir, "config.json", string(b))); err != nil {
		t.Fatal(err)
	}
	d, err := NewDaemon(h.cfg, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	d.Nix.(*rebuild.Nix).Env = nixtest.Env(t)
	d.Notify = &notify.Notifier{Send: func(string) (bool, error) { return false, nil }}
	muxes, err := networkServers(d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := serveNetwork(ctx, muxes); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	h.stop = func() { cancel(); <-done }
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
	})
	h.waitPasses(t, 1)
	return h
}

func (h *netHost) status(t *testing.T) status.Status {
	t.Helper()
	s, err := (&client.Client{Socket: h.cfg.SocketPath()}).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *netHost) waitPasses(t *testing.T, n uint64) status.Status {
	t.Helper()
	s, err := waitPasses(context.Background(), &client.Client{Socket: h.cfg.SocketPath()}, n, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scrape reads /metrics with the Prometheus text parser.
func (h *netHost) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + h.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

func value(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		match := true
		for k, v := range labels {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func (h *netHost) webhook(t *testing.T, secret, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.addr+"/webhook", strings.NewReader(body))
	req.Header.Set("X-Forgejo-Event", "push")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req.Header.Set("X-Forgejo-Signature", hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestNetworkEndpoints(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("JOURNAL_STREAM", "")
	dir := t.TempDir()
	up := nixtest.NewRepo(t, "main")
	first := up.WriteFlake(t, nixtest.FlakeOptions{Name: "fleet", Marker: "one"}, "first")
	srv := gittest.StartHTTPServer(t, up.Bare, "git-token-value")
	h := startNetHost(t, dir, up, srv.URL)

	mfs := h.scrape(t)
	if v, ok := value(mfs, "avalanche_deployed_info", map[string]string{"commit": first}); !ok || v != 1 {
		t.Errorf("avalanche_deployed_info{commit=%s} = %v, %v; want 1", first, v, ok)
	}
	if v, _ := value(mfs, "avalanche_fetches_total", map[string]string{"result": "updated"}); v != 1 {
		t.Errorf("avalanche_fetches_total{result=updated} = %v; want 1 (counted once per fetch)", v)
	}

	// A wrong signature triggers nothing; a right one exactly one pass.
	second := up.WriteFlake(t, nixtest.FlakeOptions{Name: "fleet", Marker: "two"}, "second")
	if code := h.webhook(t, "wrong", `{"ref":"refs/heads/main"}`); code != http.StatusUnauthorized {
		t.Errorf("webhook with a wrong signature = %d; want 401", code)
	}
	time.Sleep(300 * time.Millisecond)
	if s := h.status(t); s.Passes != 1 {
		t.Fatalf("passes after a forged webhook = %d; want 1", s.Passes)
	}
	pushed := time.Now()
	if code := h.webhook(t, "hunter2", `{"ref":"refs/heads/main"}`); code != http.StatusAccepted {
		t.Errorf("webhook = %d; want 202", code)
	}
	s := h.waitPasses(t, 2)
	t.Logf("webhook to deployed: %v", time.Since(pushed))
	if s.Passes != 2 || s.Deployed == nil || s.Deployed.Commit != second {
		t.Errorf("after the webhook: passes %d, deployed %+v; want 2 and %s", s.Passes, s.Deployed, second)
	}

	// /status over the network: the same JSON, without paths to secrets.
	resp, err := http.Get("http://" + h.addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	var ns status.Status
	if err := json.Unmarshal(body.Bytes(), &ns); err != nil || ns.Deployed == nil || ns.Deployed.Commit != second {
		t.Errorf("GET /status = %s, %v; want deployed %s", body, err, second)
	}
	if strings.Contains(body.String(), dir+"/git-token") || strings.Contains(body.String(), "git-token-value") {
		t.Errorf("GET /status leaks the token or its path: %s", body)
	}

	// After a restart the metrics come from state, not from zero.
	h.stop()
	h.stop = nil
	h2 := startNetHost(t, dir, up, srv.URL)
	mfs = h2.scrape(t)
	if v, ok := value(mfs, "avalanche_deployed_info", map[string]string{"commit": second}); !ok || v != 1 {
		t.Errorf("after a restart avalanche_deployed_info{commit=%s} = %v, %v; want 1", second, v, ok)
	}
	if _, ok := value(mfs, "avalanche_phase_last_success", map[string]string{"phase": "build"}); !ok {
		t.Errorf("after a restart avalanche_phase_last_success{phase=build} is missing; want it restored from state")
	}
}
