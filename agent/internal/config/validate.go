package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
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
	def(&c.Secrets.Dir, "/run/secrets")
	if c.Secrets.KeepGenerations == 0 {
		c.Secrets.KeepGenerations = 5
	}
	def(&c.ExitNode.Tailnet, "-")
	def(&c.ExitNode.Socket, "/var/run/tailscale/tailscaled.sock")
	def(&c.HomeIP.Firewall, "avalanche-exit-node")
	defD(&c.HomeIP.Interval, 5*time.Minute)
	def(&c.Log.Level, "info")
	c.setBuilderDefaults()
	c.setReportDefaults()
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
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
	windowRE   = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$`)
	// scpLikeRE matches user@host:path, the scp-like SSH form git accepts.
	scpLikeRE = regexp.MustCompile(`^([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:[^/].*$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/.*$`)
)

// Validate reports every problem in c at once, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !hostnameRE.MatchString(c.Hostname) {
		bad("hostname %q is not a valid host name", c.Hostname)
	}
	if !outputRE.MatchString(c.FlakeOutput) {
		bad("flakeOutput %q is not a valid flake attribute name", c.FlakeOutput)
	}
	errs = append(errs, c.Repository.validate()...)
	if err := c.Repository.validateTokenTransport(); err != nil {
		errs = append(errs, err)
	}
	if c.PollInterval.D() < time.Second {
		bad("pollInterval %s is shorter than 1s", c.PollInterval.D())
	}
	for name, p := range map[string]string{"stateDir": c.StateDir, "runtimeDir": c.RuntimeDir, "secrets.dir": c.Secrets.Dir,
		"deploy.profile": c.Deploy.Profile, "deploy.currentSystem": c.Deploy.CurrentSystem, "deploy.bootedSystem": c.Deploy.BootedSystem} {
		if !filepath.IsAbs(p) {
			bad("%s %q must be an absolute path", name, p)
		}
	}
	errs = append(errs, c.Deploy.validate()...)
	for _, f := range c.Verify.GPGKeyFiles {
		if !filepath.IsAbs(f) {
			bad("verify.gpgKeyFiles: %q must be an absolute path", f)
		}
	}
	if f := c.Verify.AllowedSignersFile; f != "" && !filepath.IsAbs(f) {
		bad("verify.allowedSignersFile %q must be an absolute path", f)
	}
	errs = append(errs, c.Secrets.validate()...)
	errs = append(errs, c.validateBuilder()...)
	errs = append(errs, c.Report.Forge.validate(c.Repository.URL)...)
	if c.ExitNode.Enable && c.ExitNode.AuthKeyFile == "" {
		bad("exitNode.enable needs exitNode.authKeyFile")
	}
	if c.HomeIP.Enable && c.HomeIP.TokenFile == "" {
		bad("homeIP.enable needs homeIP.tokenFile (a Hetzner Cloud API token file)")
	}
	if c.Webhook.Listen != "" && c.Webhook.SecretFile == "" {
		bad("webhook.listen needs webhook.secretFile: unsigned webhooks are refused")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q is not one of debug, info, warn, error", c.Log.Level)
	}
	return errors.Join(errs...)
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
		errs = append(errs, fmt.Errorf("repository.testingBranch must differ from repository.branch %q", r.Branch))
	}
	for name, b := range map[string]string{"branch": r.Branch, "testingBranch": r.TestingBranch} {
		if strings.HasPrefix(b, "refs/") || strings.Contains(b, "..") || strings.ContainsAny(b, " ~^:?*[\\") {
			errs = append(errs, fmt.Errorf("repository.%s %q is not a valid branch name", name, b))
		}
	}
	if r.FetchTimeout.D() < time.Second {
		errs = append(errs, fmt.Errorf("repository.fetchTimeout %s is shorter than 1s", r.FetchTimeout.D()))
	}
	return errs
}

// RemoteKind classifies a repository URL as "https", "http", "ssh" or "local".
func RemoteKind(raw string) (string, error) {
	switch {
	case raw == "":
		return "", errors.New("is empty")
	case filepath.IsAbs(raw):
		return "local", nil
	case scpLikeRE.MatchString(raw):
		return "ssh", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	switch u.Scheme {
	case "https", "http", "ssh":
		if u.Host == "" {
			return "", fmt.Errorf("%q has no host", raw)
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
	return "", fmt.Errorf("%q: scheme must be https, ssh or file, or an absolute path", raw)
}

func redact(u *url.URL) string {
	c := *u
	c.User = url.User(c.User.Username())
	return c.String()
}

func (d Deploy) validate() []error {
	var errs []error
	switch d.Action {
	case "switch", "boot", "test":
	default:
		errs = append(errs, fmt.Errorf("deploy.action %q is not one of switch, boot, test", d.Action))
	}
	if d.ConfirmTimeout.D() < time.Second {
		errs = append(errs, fmt.Errorf("deploy.confirmTimeout %s is shorter than 1s", d.ConfirmTimeout.D()))
	}
	if d.SwitchTimeout.D() < time.Second {
		errs = append(errs, fmt.Errorf("deploy.switchTimeout %s is shorter than 1s", d.SwitchTimeout.D()))
	}
	if d.KeepGCRoots < 1 {
		errs = append(errs, fmt.Errorf("deploy.keepGCRoots %d must be at least 1", d.KeepGCRoots))
	}
	for i, h := range d.HealthChecks {
		if strings.TrimSpace(h) == "" {
			errs = append(errs, fmt.Errorf("deploy.healthChecks[%d] is empty", i))
		}
	}
	if !windowRE.MatchString(d.Reboot.Window) {
		errs = append(errs, fmt.Errorf("deploy.reboot.window %q is not HH:MM-HH:MM", d.Reboot.Window))
	}
	return errs
}

func (s Secrets) validate() []error {
	var errs []error
	for _, f := range append(append([]string{}, s.AgeKeyFiles...), s.SSHKeyPaths...) {
		if !filepath.IsAbs(f) {
			errs = append(errs, fmt.Errorf("secrets: key path %q must be absolute", f))
		}
	}
	if s.KeepGenerations < 1 {
		errs = append(errs, fmt.Errorf("secrets.keepGenerations %d must be at least 1", s.KeepGenerations))
	}
	if s.Helper != "" && !filepath.IsAbs(s.Helper) {
		errs = append(errs, fmt.Errorf("secrets.helper %q must be an absolute path", s.Helper))
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
