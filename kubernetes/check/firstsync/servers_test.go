package firstsync

import (
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/kubernetes/check"
	"github.com/avalanche-fleet/avalanche/kubernetes/check/upstream"
)

// thisRepo is the repoURL by which the tree names itself.
const thisRepo = "https://github.com/avalanche-fleet/avalanche.git"

// repoRoot is the monorepo's root, from this package's directory.
var repoRoot, _ = filepath.Abs("../../..")

// servers serves the tree over git's smart HTTP (git http-backend) and the
// vendored charts as Helm repositories, and gives the URL each of the
// tree's repoURLs is rewritten to in the served copy.
type servers struct {
	rewrite map[string]string // tree repoURL -> served URL
	work    string            // the served tree's work tree
}

func startServers(t *testing.T, edit func(dir string)) *servers {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("git missing: apt-get install git")
	}
	dir := t.TempDir()
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	s := &servers{rewrite: map[string]string{thisRepo: ts.URL + "/git/avalanche.git"}}
	var pins check.ChartPins
	if err := upstream.ReadJSON(filepath.Join(repoRoot, "kubernetes/check/upstream/charts.json"), &pins); err != nil {
		t.Fatal(err)
	}
	for i, p := range pins.Charts {
		if _, ok := s.rewrite[p.RepoURL]; ok {
			continue
		}
		sub := "charts" + strconv.Itoa(i)
		s.rewrite[p.RepoURL] = ts.URL + "/" + sub
		if err := check.WriteHelmRepo(filepath.Join(repoRoot, "kubernetes/check/upstream"), p.RepoURL, filepath.Join(dir, "helm", sub), ts.URL+"/"+sub); err != nil {
			t.Fatal(err)
		}
	}
	mux.Handle("/", http.FileServer(http.Dir(filepath.Join(dir, "helm"))))
	mux.Handle("/git/", http.StripPrefix("/git", &cgi.Handler{
		Path: git, Args: []string{"http-backend"},
		Env:    []string{"GIT_PROJECT_ROOT=" + filepath.Join(dir, "git"), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + dir},
		Logger: log.New(io.Discard, "", 0),
	}))
	s.publish(t, dir, edit)
	return s
}

// publish commits a copy of kubernetes/ (the vendored charts left out),
// with every repoURL rewritten and edit applied, as branch main of the
// served repository.
func (s *servers) publish(t *testing.T, dir string, edit func(string)) {
	t.Helper()
	work := filepath.Join(dir, "work")
	s.work = work
	src := filepath.Join(repoRoot, "kubernetes")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(work, "kubernetes", rel)
		if d.IsDir() {
			if rel == "check" {
				return filepath.SkipDir
			}
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.rewriteURLs(t, filepath.Join(work, "kubernetes/clusters"))
	if edit != nil {
		edit(work)
	}
	bare := filepath.Join(dir, "git", "avalanche.git")
	for _, argv := range [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "add", "-A"},
		{"-C", work, "-c", "user.name=test", "-c", "user.email=test@invalid", "commit", "-q", "-m", "tree"},
		{"clone", "-q", "--bare", work, bare},
	} {
		if out, err := exec.Command("git", argv...).CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
}

// rewriteURLs replaces the tree's repoURLs in every YAML file under dir
// (and adds the served ones to the AppProjects' sourceRepos).
func (s *servers) rewriteURLs(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out := string(b)
		for from, to := range s.rewrite {
			if filepath.Base(p) == "projects.yaml" {
				// Keep the original too: ArgoCD checks the repositories a
				// chart's Chart.yaml names for its subcharts against it.
				out = strings.ReplaceAll(out, "- "+from+"\n", "- "+from+"\n    - "+to+"\n")
				continue
			}
			out = strings.ReplaceAll(out, from, to)
		}
		return os.WriteFile(p, []byte(out), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
