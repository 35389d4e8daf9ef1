package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Defaults for Options.
const (
	DefaultPort    = 9123
	DefaultTimeout = 5 * time.Second
)

// maxStatus bounds a status answer; a real one is a few KiB.
const maxStatus = 1 << 20

// maxParallel bounds the hosts asked at the same time.
const maxParallel = 32

// Options says how to reach the hosts and how to count commits behind main.
type Options struct {
	// Timeout bounds each host's answer; DefaultTimeout when 0.
	Timeout time.Duration
	// Port and Domain make the address of a host without one:
	// http://<name>[.<domain>]:<port>. Port is DefaultPort when 0.
	Port   int
	Domain string
	// HTTPClient makes the requests; a plain client when nil.
	HTTPClient *http.Client
	// MainCommit is the tip of main; a host running it is 0 behind.
	MainCommit string
	// Behind counts the commits from deployed to the tip of main. When nil or
	// failing, the count is unknown (-1).
	Behind func(deployed string) (int, error)
}

// Row is one host's line of the fleet view.
type Row struct {
	Host      string `json:"host"`
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"`
	Commit    string `json:"commit"`
	// Behind is how many commits main is ahead of Commit; -1 when unknown.
	Behind       int    `json:"behind"`
	State        string `json:"state"`
	LastError    string `json:"lastError"`
	RebootNeeded bool   `json:"rebootNeeded"`
	// Builder is what the fleet's builder is doing for this host, e.g.
	// "building 0123456789ab", "done 0123456789ab" ("" without a builder).
	Builder string `json:"builder,omitempty"`
	// Err says why the status could not be read ("" when Reachable).
	Err string `json:"error,omitempty"`
	// Refused lists the commits the host will not deploy again: they
	// failed or rolled back there.
	Refused []string `json:"refused,omitempty"`
	// Rollout is the host's rollout gate decision (rollout.wave only).
	Rollout *rollout.Decision `json:"rollout,omitempty"`
}

// Query asks every host for its status at once, each within o.Timeout. Every
// host gets a row, in the order of hosts; unreachable ones have
// Reachable false and Err set.
func Query(ctx context.Context, hosts []Host, o Options) []Row {
	o = o.withDefaults()
	rows := make([]Row, len(hosts))
	builders := make([]*status.Builder, len(hosts))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i], builders[i] = queryHost(ctx, h, o)
		})
	}
	wg.Wait()
	builderPhases(rows, builders)
	// Behind may read a git repository, which is not safe for concurrent
	// use; it runs once the network part is done.
	for i := range rows {
		rows[i].Behind = o.behind(rows[i].Commit)
	}
	return rows
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	return o
}

func (o Options) address(h Host) string {
	if h.Address != "" {
		return strings.TrimRight(h.Address, "/")
	}
	name := h.Name
	if o.Domain != "" {
		name += "." + strings.TrimPrefix(o.Domain, ".")
	}
	return "http://" + net.JoinHostPort(name, strconv.Itoa(o.Port))
}

func (o Options) behind(commit string) int {
	switch {
	case commit == "":
		return -1
	case commit == o.MainCommit:
		return 0
	case o.Behind == nil:
		return -1
	}
	n, err := o.Behind(commit)
	if err != nil {
		return -1
	}
	return n
}

// queryHost returns h's row and, when h has the builder role, its progress.
func queryHost(ctx context.Context, h Host, o Options) (Row, *status.Builder) {
	row := Row{Host: h.Name, Address: o.address(h), Behind: -1}
	s, err := fetchStatus(ctx, o.HTTPClient, row.Address+"/status", o.Timeout)
	if err != nil {
		row.Err = err.Error()
		return row, nil
	}
	row.Reachable = true
	row.State = s.State
	row.LastError = s.LastError
	row.RebootNeeded = s.RebootNeeded
	if s.Deployed != nil {
		row.Commit = s.Deployed.Commit
	}
	row.Rollout = s.Rollout
	for _, b := range s.Refused {
		row.Refused = append(row.Refused, b.Commit)
	}
	return row, s.Builder
}

// fetchStatus reads a host's status. Its errors do not repeat the URL: the
// row shows the address already and the table has little room.
func fetchStatus(ctx context.Context, c *http.Client, url string, timeout time.Duration) (*status.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return nil, fmt.Errorf("no answer within %v", timeout)
	}
	if err != nil {
		return nil, unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var s status.Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatus)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding status: %w", err)
	}
	return &s, nil
}

// unwrapURLError drops the "Get <url>:" prefix a *url.Error adds, and keeps
// of a network error only its cause ("connection refused", "no such host"):
// the row names the address already.
func unwrapURLError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		for errors.Unwrap(err) != nil {
			err = errors.Unwrap(err)
		}
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
