package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/client"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/demo"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// runDemo shows the agent's main job end to end in a sandbox: a pushed
// commit is fetched over a real git server, built with real nix and
// switched to; a no-op commit costs one evaluation; status at the end.
func runDemo(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("demo")
	keep := fs.Bool("keep", false, "keep the sandbox directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := demo.Check(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "avalanche-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	sb, err := demo.New(ctx, dir)
	if err != nil {
		return err
	}
	defer sb.Close()
	c, err := demoConfig(dir, sb.URL)
	if err != nil {
		return err
	}
	return demoScript(ctx, m, sb, c, fs)
}

func demoScript(ctx context.Context, m *Main, sb *demo.Sandbox, c *config.Config, _ *flag.FlagSet) error {
	say := func(f string, a ...any) { fmt.Fprintf(m.Stdout, "\n==> "+f+"\n", a...) }
	if err := sb.Push(ctx, demo.Commit{Message: "demo: first system", Motd: "hello from commit one"}); err != nil {
		return err
	}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	d, err := NewDaemon(c, m.Stderr)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()
	cl := &client.Client{Socket: c.SocketPath()}
	say("the agent starts: its start-up pass fetches main, builds and switches")
	st, err := waitPasses(ctx, cl, 1, 5*time.Minute)
	if err != nil {
		return err
	}
	if st.Deployed != nil {
		fmt.Fprintf(m.Stdout, "pass 1: %s %s\n", st.Deployed.Result, shortC(st.Deployed.Commit))
	} else {
		fmt.Fprintf(m.Stdout, "pass 1: %s\n", st.LastError)
	}
	k8s := map[string]string{"kubernetes/apps/demo.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo}\n"}
	steps := []struct {
		say    string
		commit demo.Commit
	}{
		{"git push of a commit that changes the system; avalanche-agent sync --wait",
			demo.Commit{Message: "demo: change motd", Motd: "hello from commit two"}},
		{"a commit that only touches kubernetes/: one evaluation, no build, no switch",
			demo.Commit{Message: "demo: k8s only", Motd: "hello from commit two", Files: k8s}},
		{"a commit whose switch fails (a unit does not start): rolled back, never retried",
			demo.Commit{Message: "demo: broken service", Motd: "this one is broken", Files: k8s, Broken: true}},
	}
	for _, s := range steps {
		say("%s", s.say)
		if err := sb.Push(ctx, s.commit); err != nil {
			return err
		}
		r, err := cl.Sync(ctx, true, false)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "pass %d: %s\n", r.Pass, r.Result)
		if r.Error != "" {
			first, rest := errorLines(r.Error)
			fmt.Fprintf(m.Stdout, "  %s\n", first)
			for _, l := range rest {
				fmt.Fprintf(m.Stdout, "  %s\n", l)
			}
		}
	}
	say("avalanche-agent status")
	st, err = cl.Status(ctx)
	if err != nil {
		return err
	}
	WriteStatus(m.Stdout, st, time.Now())
	motd, _ := os.ReadFile(filepath.Join(sb.CurrentSystem(), "etc", "motd"))
	fmt.Fprintf(m.Stdout, "\nthe sandbox host now runs %s\nits /etc/motd says: %s", resolveLink(sb.CurrentSystem()), motd)
	stop()
	return <-done
}

// waitPasses waits until the agent answers and has finished n passes (the
// first runs at start-up), at most timeout.
func waitPasses(ctx context.Context, cl *client.Client, n uint64, timeout time.Duration) (status.Status, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s, err := cl.Status(ctx)
		if err == nil && s.Passes >= n && (s.State == status.Idle || s.State == status.Failed) {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return status.Status{}, fmt.Errorf("the agent did not finish %d passes within %v", n, timeout)
}

// demoConfig writes and loads the sandbox host's config, through the same
// strict loader a real host uses.
func demoConfig(dir, url string) (*config.Config, error) {
	c := map[string]any{
		"version": 1, "hostname": "demo", "pollInterval": "1h",
		"repository": map[string]any{"url": url},
		"stateDir":   filepath.Join(dir, "state"), "runtimeDir": filepath.Join(dir, "run"),
		"deploy": map[string]any{
			"profile":       filepath.Join(dir, "profiles", "system"),
			"currentSystem": filepath.Join(dir, "current-system"),
			"bootedSystem":  filepath.Join(dir, "booted-system"),
			"systemdRun":    false, "confirmTimeout": "10s",
			"nixArgs": []string{"--option", "substituters", ""},
		},
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, err
	}
	return config.Load(p)
}

func resolveLink(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "(nothing)"
	}
	return r
}
