// Package config loads and validates the agent's JSON configuration.
//
// There is one path: Load reads the file, decodes it strictly (unknown keys
// are errors), fills defaults and validates, reporting every problem at once.
// Secrets never appear in the config itself, only paths to files holding them.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Version is the only config format version this agent understands.
const Version = 1

// DefaultPath is where the NixOS module writes the config.
const DefaultPath = "/etc/avalanche-agent/config.json"

// ErrNoConfig reports that the config file does not exist.
var ErrNoConfig = errors.New("no config file")

// Config is the agent's configuration, as written by the NixOS module.
type Config struct {
	Version      int        `json:"version"`
	Hostname     string     `json:"hostname,omitempty"`
	FlakeOutput  string     `json:"flakeOutput,omitempty"`
	Repository   Repository `json:"repository"`
	PollInterval Duration   `json:"pollInterval,omitempty"`
	StateDir     string     `json:"stateDir,omitempty"`
	RuntimeDir   string     `json:"runtimeDir,omitempty"`
	API          API        `json:"api"`
	Deploy       Deploy     `json:"deploy"`
	Verify       Verify     `json:"verify"`
	Secrets      Secrets    `json:"secrets"`
	ExitNode     ExitNode   `json:"exitNode"`
	HomeIP       HomeIP     `json:"homeIP"`
	Metrics      Metrics    `json:"metrics"`
	StatusListen string     `json:"statusListen,omitempty"`
	Webhook      Webhook    `json:"webhook"`
	Log          Log        `json:"log"`
	Builder      Builder    `json:"builder"`
	Report       Report     `json:"report"`
	Rollout      Rollout    `json:"rollout"`
	Path         string     `json:"-"` // file the config was loaded from
}

// Repository says where the fleet repository lives and how to reach it.
type Repository struct {
	URL            string   `json:"url"`
	Branch         string   `json:"branch,omitempty"`
	TestingBranch  string   `json:"testingBranch,omitempty"`
	TokenFile      string   `json:"tokenFile,omitempty"`
	SSHKeyFile     string   `json:"sshKeyFile,omitempty"`
	KnownHostsFile string   `json:"knownHostsFile,omitempty"`
	FetchTimeout   Duration `json:"fetchTimeout,omitempty"`
	// AllowInsecureHTTP lets tokenFile go with an http:// URL whose host is
	// loopback (a forge on the same machine, tests); never anything else.
	AllowInsecureHTTP bool `json:"allowInsecureHTTP,omitempty"`
	// MaxObjectSize, MaxFetchSize (bytes) and MaxFetchObjects bound what
	// one fetch of a branch takes in (gitsync.Limits): a pack over them is
	// refused before anything is inflated, as a fault of the pushed commit.
	MaxObjectSize   int64 `json:"maxObjectSize,omitempty"`
	MaxFetchSize    int64 `json:"maxFetchSize,omitempty"`
	MaxFetchObjects int64 `json:"maxFetchObjects,omitempty"`
}

// API configures who may use the local API socket.
type API struct {
	// Group owns the socket; its members may read status.
	Group string `json:"group,omitempty"`
	// OperatorGroup's members may act (sync, suspend, resume, rollback), as may root.
	OperatorGroup string `json:"operatorGroup,omitempty"`
}

// Deploy configures evaluation, build and activation.
type Deploy struct {
	Action         string   `json:"action,omitempty"`
	Profile        string   `json:"profile,omitempty"`
	CurrentSystem  string   `json:"currentSystem,omitempty"`
	BootedSystem   string   `json:"bootedSystem,omitempty"`
	SystemdRun     *bool    `json:"systemdRun,omitempty"`
	EvalTimeout    Duration `json:"evalTimeout,omitempty"`
	BuildTimeout   Duration `json:"buildTimeout,omitempty"`
	ConfirmTimeout Duration `json:"confirmTimeout,omitempty"`
	// SwitchTimeout bounds one switch-to-configuration (RuntimeMaxSec= of
	// its transient unit); its expiry counts as a failed activation.
	SwitchTimeout Duration `json:"switchTimeout,omitempty"`
	// RepairDrift re-activates the deployed system when something else
	// (a hand-run rebuild, a manual rollback) replaced it; default true.
	// Off, drift is only reported.
	RepairDrift    *bool    `json:"repairDrift,omitempty"`
	HealthChecks   []string `json:"healthChecks,omitempty"`
	KeepGCRoots    int      `json:"keepGCRoots,omitempty"`
	PostDeployHook string   `json:"postDeployHook,omitempty"`
	NixArgs        []string `json:"nixArgs,omitempty"`
	Reboot         Reboot   `json:"reboot"`
	Drain          Drain    `json:"drain"`
	// Builder mode (builder.go): where the system comes from.
	Source          string   `json:"source,omitempty"`
	BuilderTimeout  Duration `json:"builderTimeout,omitempty"`
	BuilderFallback string   `json:"builderFallback,omitempty"`
	Cache           Cache    `json:"cache"`
}

// Reboot configures automatic reboots when the kernel or initrd changed.
type Reboot struct {
	Enable bool   `json:"enable,omitempty"`
	Window string `json:"window,omitempty"`
}

// Drain configures draining this host's k3s node (cordon, evict its pods
// through the eviction API, uncordon once Ready) around a switch that
// restarts k3s and around a reboot. The agent runs Helper
// (avalanche-drain) only then; empty Helper means avalanche-drain next to
// the agent's executable.
type Drain struct {
	Enable     bool     `json:"enable,omitempty"`
	Helper     string   `json:"helper,omitempty"`
	Kubeconfig string   `json:"kubeconfig,omitempty"`
	Node       string   `json:"node,omitempty"`
	Timeout    Duration `json:"timeout,omitempty"`
}

// Verify configures commit signature verification.
type Verify struct {
	AllowedSignersFile string   `json:"allowedSignersFile,omitempty"`
	GPGKeyFiles        []string `json:"gpgKeyFiles,omitempty"`
	// Who may sign releases (builder.go).
	BuilderPrincipal   string `json:"builderPrincipal,omitempty"`
	BuilderSignersFile string `json:"builderSignersFile,omitempty"`
}

// Secrets configures SOPS decryption and installation.
type Secrets struct {
	Dir             string   `json:"dir,omitempty"`
	AgeKeyFiles     []string `json:"ageKeyFiles,omitempty"`
	SSHKeyPaths     []string `json:"sshKeyPaths,omitempty"`
	KeepGenerations int      `json:"keepGenerations,omitempty"`
	Helper          string   `json:"helper,omitempty"`
	// AllowSwappable accepts generations on a tmpfs whose pages may be
	// swapped out, when no ramfs or noswap tmpfs can be had.
	AllowSwappable bool `json:"allowSwappable,omitempty"`
}

// ExitNode configures the Tailscale exit node role (the VPS).
type ExitNode struct {
	Enable      bool   `json:"enable,omitempty"`
	AuthKeyFile string `json:"authKeyFile,omitempty"`
	APIKeyFile  string `json:"apiKeyFile,omitempty"`
	Tailnet     string `json:"tailnet,omitempty"`
	Socket      string `json:"socket,omitempty"`
}

// HomeIP configures the home public IP watcher that keeps the VPS firewall current.
type HomeIP struct {
	Enable       bool     `json:"enable,omitempty"`
	Firewall     string   `json:"firewall,omitempty"`
	TokenFile    string   `json:"tokenFile,omitempty"`
	WANInterface string   `json:"wanInterface,omitempty"`
	Interval     Duration `json:"interval,omitempty"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Listen string `json:"listen,omitempty"`
}

// Webhook configures the push-event trigger endpoint.
type Webhook struct {
	Listen     string `json:"listen,omitempty"`
	SecretFile string `json:"secretFile,omitempty"`
}

// Log configures logging.
type Log struct {
	Level string `json:"level,omitempty"`
}

// Load reads, decodes, defaults and validates the config at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoConfig)
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// Parse decodes strictly, applies defaults and validates. Every problem it
// can find is reported, joined, each naming its key path and what the key
// wants: unknown keys, values of the wrong type, a wrong version, bad values.
func Parse(b []byte) (*Config, error) {
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if _, ok := raw.(map[string]any); !ok {
		return nil, fmt.Errorf("config: %s is not an object (want {\"version\": 1, …})", elide(b))
	}
	var c Config
	errs := decode(raw, reflect.ValueOf(&c).Elem(), "")
	if c.Version != Version {
		errs = append(errs, fmt.Errorf("version: %d is not supported (want %d)", c.Version, Version))
	}
	c.setDefaults()
	errs = append(errs, withoutKeys(c.problems(), errs)...)
	if err := joinSorted(errs); err != nil {
		return nil, err
	}
	return &c, nil
}

// elide shortens a value quoted in an error.
func elide(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// withoutKeys drops the problems about keys that already failed to decode:
// a value that could not be read is not judged again as its zero value.
func withoutKeys(problems, decodeErrs []error) []error {
	failed := map[string]bool{}
	for _, e := range decodeErrs {
		key, _, _ := strings.Cut(e.Error(), ":")
		failed[key] = true
	}
	return slices.DeleteFunc(problems, func(e error) bool {
		if e == nil {
			return true
		}
		key, _, _ := strings.Cut(e.Error(), ":")
		return failed[key]
	})
}

// SystemdRunEnabled reports whether activation runs in a transient unit.
func (d Deploy) SystemdRunEnabled() bool { return d.SystemdRun == nil || *d.SystemdRun }

// RepairDriftEnabled reports whether drift is repaired, not only reported.
func (d Deploy) RepairDriftEnabled() bool { return d.RepairDrift == nil || *d.RepairDrift }

// SocketPath is the local API socket.
func (c *Config) SocketPath() string { return c.RuntimeDir + "/agent.sock" }

// StatePath is the state file.
func (c *Config) StatePath() string { return c.StateDir + "/state.json" }

// RepoDir is the bare repository the agent fetches into.
func (c *Config) RepoDir() string { return c.StateDir + "/repo.git" }

// Duration is a time.Duration written as a Go duration string ("60s", "2m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a duration (want a string such as \"60s\", \"5m\")", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%s is not a duration (want e.g. \"60s\", \"5m\")", b)
	}
	*d = Duration(v)
	return nil
}
