package daemon

import (
	"context"
	"path/filepath"

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
	files := d.watchedFiles()
	dirs := map[string]bool{}
	for f := range files {
		dirs[filepath.Dir(f)] = true
	}
	for _, dir := range d.repoWatchDirs() {
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
			d.onFileEvent(ev, files)
		}
	}
}

func (d *Daemon) onFileEvent(ev fsnotify.Event, files map[string]bool) {
	if ev.Has(fsnotify.Chmod) {
		return
	}
	name := filepath.Clean(ev.Name)
	switch {
	case name == filepath.Clean(d.Config.Path):
		d.reloadConfig()
	case files[name]:
		d.Log.Info().Str("file", name).Msg("key file changed")
		d.Trigger()
	case d.inRepo(name):
		d.Trigger()
	}
}

// reloadConfig reads the config again. Only settings that are safe to change
// in a running daemon take effect; the rest apply at the next restart.
func (d *Daemon) reloadConfig() {
	c, err := config.Load(d.Config.Path)
	if err != nil {
		d.Log.Error().Err(err).Msg("config changed but is invalid; keeping the running config")
		return
	}
	d.mu.Lock()
	old := d.Config
	c.StateDir, c.RuntimeDir, c.API = old.StateDir, old.RuntimeDir, old.API
	d.Config = c
	d.mu.Unlock()
	if d.OnReload != nil {
		d.OnReload(c)
	}
	d.Log.Info().Str("file", c.Path).Msg("config reloaded")
	d.Trigger()
}

func (d *Daemon) watchedFiles() map[string]bool {
	c := d.Config
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
func (d *Daemon) repoWatchDirs() []string {
	kind, _ := config.RemoteKind(d.Config.Repository.URL)
	if kind != "local" {
		return nil
	}
	root := localPath(d.Config.Repository.URL)
	gitDir := root
	if exists(filepath.Join(root, ".git")) {
		gitDir = filepath.Join(root, ".git")
	}
	dirs := []string{gitDir, filepath.Join(gitDir, "refs", "heads")}
	if dir := filepath.Dir(d.Config.Repository.TestingBranch); dir != "." {
		dirs = append(dirs, filepath.Join(gitDir, "refs", "heads", dir))
	}
	return dirs
}

func (d *Daemon) inRepo(name string) bool {
	for _, dir := range d.repoWatchDirs() {
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
