package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"

	"github.com/fsnotify/fsnotify"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
)

// watch triggers passes when the config file, key files or a local-path
// repository change. A changed config is reloaded; an invalid one is
// reported and the running config kept.
func (d *Daemon) watch(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.Log.Warn().Err(err).Msg("file watching disabled")
		return
	}
	defer w.Close()
	// The watch list is fixed at start: paths in the config that change take
	// effect at the next restart. Working from this snapshot keeps the
	// watcher off d.Config, which passes may swap.
	d.mu.Lock()
	c := d.Config
	d.mu.Unlock()
	files := watchedFiles(c)
	repoDirs := repoWatchDirs(c)
	dirs := map[string]bool{}
	for f := range files {
		dirs[filepath.Dir(f)] = true
	}
	for _, dir := range repoDirs {
		dirs[dir] = true
	}
	for dir := range dirs {
		if err := w.Add(dir); err != nil {
			d.Log.Debug().Err(err).Str("dir", dir).Msg("not watching")
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.Errors:
			d.Log.Warn().Err(err).Msg("file watcher")
		case ev := <-w.Events:
			if ev.Has(fsnotify.Create) && slices.Contains(repoDirs, filepath.Clean(ev.Name)) {
				// A directory that did not exist at start, refs/heads/testing
				// when the testing branch came later: watch it from now on,
				// or the branch's next pushes wait for the poll.
				if err := w.Add(ev.Name); err != nil {
					d.Log.Debug().Err(err).Str("dir", ev.Name).Msg("not watching")
				}
			}
			d.onFileEvent(ev, c.Path, files, repoDirs)
		}
	}
}

func (d *Daemon) onFileEvent(ev fsnotify.Event, configPath string, files map[string]bool, repoDirs []string) {
	if ev.Has(fsnotify.Chmod) {
		return
	}
	name := filepath.Clean(ev.Name)
	switch {
	case name == filepath.Clean(configPath):
		d.reloadConfig(configPath)
	case files[name]:
		d.Log.Info().Str("file", name).Msg("key file changed")
		d.Trigger()
	case inRepo(name, repoDirs):
		d.Trigger()
	}
}

// reloadConfig reads the config again. Only settings that are safe to change
// in a running daemon take effect; the rest apply at the next restart.
func (d *Daemon) reloadConfig(path string) {
	c, err := config.Load(path)
	if err != nil {
		d.Log.Error().Err(err).Msg("config changed but is invalid; keeping the running config")
		return
	}
	d.mu.Lock()
	old := d.Config
	c.StateDir, c.RuntimeDir, c.API = old.StateDir, old.RuntimeDir, old.API
	d.nextConfig = c
	d.mu.Unlock()
	d.Log.Info().Str("file", c.Path).Msg("config changed; it applies from the next pass")
	d.Trigger()
}

// applyConfig switches to a reloaded config between passes, so a pass
// never sees two configs.
func (d *Daemon) applyConfig() {
	d.mu.Lock()
	c := d.nextConfig
	d.nextConfig = nil
	if c != nil {
		d.Config = c
	}
	d.mu.Unlock()
	if c != nil && d.OnReload != nil {
		d.OnReload(c)
	}
}

func watchedFiles(c *config.Config) map[string]bool {
	files := map[string]bool{}
	add := func(p string) {
		if p != "" {
			files[filepath.Clean(p)] = true
		}
	}
	add(c.Path)
	add(c.Repository.TokenFile)
	add(c.Repository.SSHKeyFile)
	add(c.Repository.KnownHostsFile)
	add(c.Verify.AllowedSignersFile)
	for _, f := range c.Verify.GPGKeyFiles {
		add(f)
	}
	for _, f := range c.Secrets.AgeKeyFiles {
		add(f)
	}
	for _, f := range c.Secrets.SSHKeyPaths {
		add(f)
	}
	return files
}

// repoWatchDirs are the directories whose changes mean a local-path
// repository got a commit: its refs and packed-refs.
func repoWatchDirs(c *config.Config) []string {
	kind, _ := config.RemoteKind(c.Repository.URL)
	if kind != "local" {
		return nil
	}
	root := localPath(c.Repository.URL)
	gitDir := root
	if _, err := os.Lstat(filepath.Join(root, ".git")); err == nil {
		gitDir = filepath.Join(root, ".git")
	}
	dirs := []string{gitDir, filepath.Join(gitDir, "refs", "heads")}
	if dir := filepath.Dir(c.Repository.TestingBranch); dir != "." {
		dirs = append(dirs, filepath.Join(gitDir, "refs", "heads", dir))
	}
	return dirs
}

func inRepo(name string, repoDirs []string) bool {
	for _, dir := range repoDirs {
		if filepath.Dir(name) == dir {
			base := filepath.Base(name)
			return base != "index" && base != "index.lock" && filepath.Ext(base) != ".lock" || base == "packed-refs"
		}
	}
	return false
}

func localPath(u string) string {
	if len(u) > len("file://") && u[:len("file://")] == "file://" {
		return u[len("file://"):]
	}
	return u
}
