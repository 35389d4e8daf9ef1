package firstsync

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/kubernetes/check/kubetest"
)

// argoBinaries returns the directory of argocd-application-controller,
// argocd-repo-server, helm and kustomize: $AVALANCHE_ARGOCD_BIN or what
// .ci/argocd prints (it builds them when missing).
func argoBinaries(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("AVALANCHE_ARGOCD_BIN"); d != "" {
		return d
	}
	script := filepath.Join(repoRoot, ".ci/argocd")
	out, err := exec.Command(script).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s (builds ArgoCD, helm, kustomize): %v: %s", script, err, msg)
	}
	return strings.TrimSpace(string(out))
}

// startArgoCD runs redis (Debian's redis-server), ArgoCD's repo-server and
// its application controller against the cluster, the controller treating
// the cluster's kubeconfig as its in-cluster config
// (ARGOCD_FAKE_IN_CLUSTER, as `argocd admin` does). It returns the
// controller, whose log says how each Application's health changed.
func startArgoCD(t *testing.T, c *kubetest.Cluster) *kubetest.Process {
	t.Helper()
	bin := argoBinaries(t)
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server missing: apt-get install redis-server")
	}
	dir := t.TempDir()
	redisAddr := "127.0.0.1:" + strconv.Itoa(kubetest.FreePort(t))
	_, redisPort, _ := strings.Cut(redisAddr, ":")
	repoAddr := "127.0.0.1:" + strconv.Itoa(kubetest.FreePort(t))
	_, repoPort, _ := strings.Cut(repoAddr, ":")
	env := []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir,
		"KUBECONFIG=" + c.Kubeconfig, "ARGOCD_FAKE_IN_CLUSTER=true", "ARGOCD_GPG_ENABLED=false",
		"ARGOCD_GNUPGHOME=" + filepath.Join(dir, "gnupg"),
	}
	port := func() string { return strconv.Itoa(kubetest.FreePort(t)) }
	controller := kubetest.StartProcess(t, dir, "argocd-application-controller", env, filepath.Join(bin, "argocd-application-controller"),
		"--kubeconfig="+c.Kubeconfig, "--namespace=argocd", "--repo-server="+repoAddr, "--repo-server-plaintext",
		"--redis="+redisAddr, "--metrics-port="+port(), "--logformat=text", "--app-resync=15",
		"--status-processors=4", "--operation-processors=4")
	c.Watch(
		kubetest.StartProcess(t, dir, "redis", nil, redis, "--bind", "127.0.0.1", "--port", redisPort,
			"--save", "", "--appendonly", "no", "--dir", dir),
		kubetest.StartProcess(t, dir, "argocd-repo-server", env, filepath.Join(bin, "argocd-repo-server"),
			"--address=127.0.0.1", "--port="+repoPort, "--metrics-address=127.0.0.1", "--metrics-port="+port(),
			"--redis="+redisAddr, "--disable-tls", "--logformat=text"),
		controller,
	)
	return controller
}
