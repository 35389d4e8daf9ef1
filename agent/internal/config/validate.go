package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (c *Config) setDefaults() {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	def(&c.FlakeOutput, c.Hostname)
	def(&c.Repository.Branch, "main")
	def(&c.Repository.TestingBranch, "testing/"+c.Hostname)
	defD(&c.Repository.FetchTimeout, 2*time.Minute)
	defN(&c.Repository.MaxObjectSize, 16<<20)
	defN(&c.Repository.MaxFetchSize, 1<<30)
	defN(&c.Repository.MaxFetchObjects, 1_000_000)
	defD(&c.PollInterval, 60*time.Second)
	def(&c.StateDir, "/var/lib/avalanche-agent")
	def(&c.RuntimeDir, "/run/avalanche-agent")
	d := &c.Deploy
	def(&d.Action, "switch")
	def(&d.Profile, "/nix/var/nix/profiles/system")
	def(&d.CurrentSystem, "/run/current-system")
	def(&d.BootedSystem, "/run/booted-system")
	defD(&d.EvalTimeout, 30*time.Minute)
	defD(&d.BuildTimeout, 4*time.Hour)
	defD(&d.ConfirmTimeout, 120*time.Second)
	defD(&d.SwitchTimeout, 30*time.Minute)
	if d.KeepGCRoots == 0 {
		d.KeepGCRoots = 3
	}
	def(&d.Reboot.Window, "02:00-05:00")
	def(&d.Drain.Kubeconfig, "/etc/rancher/k3s/k3s.yaml")
	def(&d.Drain.Node, c.Hostname)
	defD(&d.Drain.Timeout, 15*time.Minute)
	def(&c.Secrets.Dir, "/run/secrets")
	if c.Secrets.KeepGenerations == 0 {
		c.Secrets.KeepGenerations = 5
	}
	def(&c.ExitNode.Tailnet, "-")
	def(&c.ExitNode.Socket, "/var/run/tailscale/tailscaled.sock")
	def(&c.HomeIP.Firewall, "avalanche-exit-node")
	defD(&c.HomeIP.Interval, 5*time.Minute)
	def(&c.Log.Level, "info")
	if c.Rollout.Group != "" {
		defD(&c.Rollout.Lease.TTL, 15*time.Minute)
	}
	c.setBuilderDefaults()
	c.setReportDefaults()
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func defN(n *int64, v int64) {
	if *n == 0 {
		*n = v
	}
}

func defD(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

var (
	hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	outputRE   = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_'-]*$`)
	// nodeRE is a Kubernetes node name (a DNS subdomain).
	nodeRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	windowRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$`)
	// scpLikeRE matches user@host:path, the scp-like SSH form git accepts.
	scpLikeRE = regexp.MustCompile(`^([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:[^/].*$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/.*$`)
)

// Validate reports every problem in c at once, joined. Each one starts with
// its key path in config.json and says what the key wants.
func (c *Config) Validate() error { return joinSorted(c.problems()) }

func (c *Config) problems() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !hostnameRE.MatchString(c.Hostname) {
		bad("hostname: %q is not a host name (want letters, digits and '-', at most 63)", c.Hostname)
	}
	if !outputRE.MatchString(c.FlakeOutput) {
		bad("flakeOutput: %q is not a flake attribute name (want e.g. the host name)", c.FlakeOutput)
	}
	errs = append(errs, c.Repository.validate()...)
	if err := c.Repository.validateTokenTransport(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, atLeastSecond("pollInterval", c.PollInterval))
	errs = append(errs, absPaths(map[string]string{"stateDir": c.StateDir, "runtimeDir": c.RuntimeDir,
		"deploy.profile": c.Deploy.Profile, "deploy.currentSystem": c.Deploy.CurrentSystem,
		"deploy.bootedSystem": c.Deploy.BootedSystem, "verify.allowedSignersFile": c.Verify.AllowedSignersFile,
		"exitNode.authKeyFile": c.ExitNode.AuthKeyFile, "exitNode.apiKeyFile": c.ExitNode.APIKeyFile,
		"exitNode.socket": c.ExitNode.Socket, "homeIP.tokenFile": c.HomeIP.TokenFile,
		"webhook.secretFile": c.Webhook.SecretFile})...)
	errs = append(errs, absList("verify.gpgKeyFiles", c.Verify.GPGKeyFiles)...)
	errs = append(errs, c.Deploy.validate()...)
	errs = append(errs, c.Secrets.validate()...)
	errs = append(errs, c.validateBuilder()...)
	errs = append(errs, c.Report.Forge.validate(c.Repository.URL)...)
	errs = append(errs, c.validateRollout()...)
	if c.ExitNode.Enable && c.ExitNode.AuthKeyFile == "" {
		bad("exitNode.enable needs exitNode.authKeyFile")
	}
	if c.HomeIP.Enable && c.HomeIP.TokenFile == "" {
		bad("homeIP.enable needs homeIP.tokenFile (a Hetzner Cloud API token file)")
	}
	errs = append(errs, atLeastSecond("homeIP.interval", c.HomeIP.Interval))
	for key, addr := range map[string]string{"metrics.listen": c.Metrics.Listen, "statusListen": c.StatusListen,
		"webhook.listen": c.Webhook.Listen} {
		errs = append(errs, listenAddr(key, addr))
	}
	if c.Webhook.Listen != "" && c.Webhook.SecretFile == "" {
		bad("webhook.listen needs webhook.secretFile: unsigned webhooks are refused")
	}
	return append(errs, oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error"))
}

// joinSorted joins errs in key order, so that a report reads the same on
// every run whatever map iteration did.
func joinSorted(errs []error) error {
	errs = slices.DeleteFunc(errs, func(e error) bool { return e == nil })
	slices.SortStableFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// absPaths checks that each set path is absolute; unset ones are fine.
func absPaths(paths map[string]string) []error {
	var errs []error
	for key, p := range paths {
		if p != "" && !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s: %q is not an absolute path (want it to start with /)", key, p))
		}
	}
	return errs
}

func absList(key string, paths []string) []error {
	var errs []error
	for i, p := range paths {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not an absolute path (want it to start with /)", key, i, p))
		}
	}
	return errs
}

func atLeastSecond(key string, d Duration) error {
	if d.D() < time.Second {
		return fmt.Errorf("%s: %q is too short (want at least \"1s\", e.g. \"60s\", \"5m\")", key, d.D().String())
	}
	return nil
}

func oneOf(key, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("%s: %q is not one of %s", key, v, strings.Join(allowed, ", "))
}

// listenAddr checks a TCP listen address; empty means off.
func listenAddr(key, addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s: %q is not a listen address (want host:port, e.g. \"127.0.0.1:9464\" or \":9464\")", key, addr)
	}
	return nil
}

func (r Repository) validate() []error {
	var errs []error
	kind, err := RemoteKind(r.URL)
	if err != nil {
		errs = append(errs, fmt.Errorf("repository.url: %w", err))
	}
	if r.TokenFile != "" && kind != "https" && kind != "http" {
		errs = append(errs, fmt.Errorf("repository.tokenFile is set but repository.url %q is not an https URL", r.URL))
	}
	if kind == "ssh" {
		if r.SSHKeyFile == "" {
			errs = append(errs, errors.New("repository.url is an ssh URL: repository.sshKeyFile is required"))
		}
		if r.KnownHostsFile == "" {
			errs = append(errs, errors.New("repository.url is an ssh URL: repository.knownHostsFile is required (host keys are always checked)"))
		}
	}
	if r.SSHKeyFile != "" && kind != "ssh" {
		errs = append(errs, fmt.Errorf("repository.sshKeyFile is set but repository.url %q is not an ssh URL", r.URL))
	}
	if r.Branch == r.TestingBranch {
		errs = append(errs, fmt.Errorf("repository.testingBranch: %q is repository.branch too (want another branch, e.g. \"testing/HOST\")", r.TestingBranch))
	}
	for name, b := range map[string]string{"branch": r.Branch, "testingBranch": r.TestingBranch} {
		if strings.HasPrefix(b, "refs/") || strings.Contains(b, "..") || strings.ContainsAny(b, " ~^:?*[\\") {
			errs = append(errs, fmt.Errorf("repository.%s: %q is not a branch name (want e.g. \"main\", without refs/heads/)", name, b))
		}
	}
	errs = append(errs, atLeastSecond("repository.fetchTimeout", r.FetchTimeout))
	for _, l := range []struct {
		name string
		n    int64
	}{{"maxObjectSize", r.MaxObjectSize}, {"maxFetchSize", r.MaxFetchSize}, {"maxFetchObjects", r.MaxFetchObjects}} {
		if l.n < 0 {
			errs = append(errs, fmt.Errorf("repository.%s: %d is negative (want a positive number, or leave it out for the default)", l.name, l.n))
		}
	}
	errs = append(errs, absPaths(map[string]string{"repository.tokenFile": r.TokenFile,
		"repository.sshKeyFile": r.SSHKeyFile, "repository.knownHostsFile": r.KnownHostsFile})...)
	return errs
}

// urlForms lists the repository URLs the agent can fetch from.
const urlForms = "an https://, ssh:// or file:// URL, user@host:path or an absolute path"

// RemoteKind classifies a repository URL as "https", "http", "ssh" or "local".
func RemoteKind(raw string) (string, error) {
	switch {
	case raw == "":
		return "", fmt.Errorf("is empty (want %s)", urlForms)
	case filepath.IsAbs(raw):
		return "local", nil
	case scpLikeRE.MatchString(raw):
		return "ssh", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL (want %s): %w", raw, urlForms, err)
	}
	switch u.Scheme {
	case "https", "http", "ssh":
		if u.Host == "" {
			return "", fmt.Errorf("%q has no host (want e.g. \"https://git.example/fleet/avalanche.git\")", raw)
		}
		if u.User != nil {
			if _, hasPass := u.User.Password(); hasPass {
				return "", fmt.Errorf("%q embeds a password; use repository.tokenFile", redact(u))
			}
		}
		return u.Scheme, nil
	case "file":
		return "local", nil
	}
	return "", fmt.Errorf("%q has scheme %q (want %s)", raw, u.Scheme, urlForms)
}

func redact(u *url.URL) string {
	c := *u
	c.User = url.User(c.User.Username())
	return c.String()
}

func (d Deploy) validate() []error {
	var errs []error
	errs = append(errs, oneOf("deploy.action", d.Action, "switch", "boot", "test"))
	for key, v := range map[string]Duration{"deploy.evalTimeout": d.EvalTimeout,
		"deploy.buildTimeout": d.BuildTimeout, "deploy.confirmTimeout": d.ConfirmTimeout,
		"deploy.switchTimeout": d.SwitchTimeout, "deploy.drain.timeout": d.Drain.Timeout} {
		errs = append(errs, atLeastSecond(key, v))
	}
	if d.KeepGCRoots < 1 {
		errs = append(errs, fmt.Errorf("deploy.keepGCRoots: %d is too small (want at least 1)", d.KeepGCRoots))
	}
	for i, h := range d.HealthChecks {
		if strings.TrimSpace(h) == "" {
			errs = append(errs, fmt.Errorf("deploy.healthChecks[%d]: is empty (want a shell command)", i))
		}
	}
	errs = append(errs, absPaths(map[string]string{"deploy.drain.helper": d.Drain.Helper, "deploy.drain.kubeconfig": d.Drain.Kubeconfig})...)
	if d.Drain.Enable && (len(d.Drain.Node) > 253 || !nodeRE.MatchString(d.Drain.Node)) {
		errs = append(errs, fmt.Errorf("deploy.drain.node: %q is not a Kubernetes node name (want k3s's node name: lowercase letters, digits, '-' and '.'; default the host name)", d.Drain.Node))
	}
	if !windowRE.MatchString(d.Reboot.Window) {
		errs = append(errs, fmt.Errorf("deploy.reboot.window: %q is not a time window (want HH:MM-HH:MM, e.g. \"02:00-05:00\")", d.Reboot.Window))
	}
	return errs
}

func (s Secrets) validate() []error {
	var errs []error
	errs = append(errs, absList("secrets.ageKeyFiles", s.AgeKeyFiles)...)
	errs = append(errs, absList("secrets.sshKeyPaths", s.SSHKeyPaths)...)
	errs = append(errs, absPaths(map[string]string{"secrets.dir": s.Dir, "secrets.helper": s.Helper})...)
	if s.KeepGenerations < 1 {
		errs = append(errs, fmt.Errorf("secrets.keepGenerations: %d is too small (want at least 1)", s.KeepGenerations))
	}
	return errs
}

// validateTokenTransport refuses a token that would cross the network in
// clear: tokenFile with an http:// URL is accepted only for a loopback host
// and only with repository.allowInsecureHTTP set.
func (r Repository) validateTokenTransport() error {
	u, err := url.Parse(r.URL)
	if r.TokenFile == "" || err != nil || u.Scheme != "http" {
		return nil
	}
	if !r.AllowInsecureHTTP {
		shown := r.URL
		if u.User != nil {
			shown = redact(u)
		}
		return fmt.Errorf("repository.tokenFile is set but repository.url %q is plain http, so the token would cross the network unencrypted: "+
			"use an https URL (only for a forge on this machine: repository.allowInsecureHTTP = true with a loopback host)", shown)
	}
	host := u.Hostname()
	if !loopback(host) {
		return fmt.Errorf("repository.allowInsecureHTTP only covers a loopback host (localhost, 127.0.0.0/8, ::1), "+
			"not repository.url's host %q: use an https URL", host)
	}
	return nil
}

// loopback reports whether host is localhost or a loopback address.
func loopback(host string) bool {
	ip, err := netip.ParseAddr(host)
	return strings.EqualFold(host, "localhost") || (err == nil && ip.IsLoopback())
}
