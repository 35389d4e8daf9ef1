// Package kubetest runs a real Kubernetes control plane for tests: etcd
// (Debian's etcd-server), kube-apiserver, kube-controller-manager and
// kube-scheduler built from the k8s.io/kubernetes module (.ci/kube), and
// kwok, which stands in for the kubelet and makes nodes and pods Ready. All
// of it listens on loopback ports and lives in the test's directory; it is
// stopped when the test ends. It depends only on the standard library and
// client-go, so that other modules can copy it.
package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is a running control plane.
type Cluster struct {
	Dir        string // the test directory holding certificates, data and logs
	Server     string // https://127.0.0.1:<port>
	Kubeconfig string // cluster-admin (system:masters) kubeconfig file
	Config     *rest.Config
	Client     kubernetes.Interface
	procs      []*Process
}

// NodeName is the fake node kwok keeps Ready.
const NodeName = "kwok-node-0"

// Binaries returns the directory of kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok and kwok-stages.yaml: $AVALANCHE_KUBE_BIN, or what
// the repository's .ci/kube prints (it builds them when missing).
func Binaries(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("AVALANCHE_KUBE_BIN"); d != "" {
		return d
	}
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		script := filepath.Join(d, ".ci/kube")
		if _, err := os.Stat(script); err != nil {
			continue
		}
		out, err := exec.Command(script).Output()
		if err != nil {
			t.Fatalf("%s (builds kube-apiserver and kwok): %v: %s", script, err, stderr(err))
		}
		return strings.TrimSpace(string(out))
	}
	t.Fatal("no .ci/kube above " + wd + " and AVALANCHE_KUBE_BIN unset: cannot find kube-apiserver")
	return ""
}

func stderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// Start runs a control plane with one fake node and waits until the API
// server is ready and the node is Ready. apiserverFlags are added to
// kube-apiserver's.
func Start(t *testing.T, apiserverFlags ...string) *Cluster {
	t.Helper()
	bin := Binaries(t)
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatal("etcd missing: apt-get install etcd-server")
	}
	c := &Cluster{Dir: t.TempDir()}
	p, err := newPKI(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	etcdURL := c.startEtcd(t, etcd)
	c.startAPIServer(t, bin, p, etcdURL, apiserverFlags)
	c.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig(c.Server, p), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	c.Config.QPS, c.Config.Burst = 200, 400
	c.Client = kubernetes.NewForConfigOrDie(c.Config)
	c.startControllers(t, bin, p)
	c.addNode(t)
	return c
}

func (c *Cluster) startEtcd(t *testing.T, etcd string) string {
	client := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	c.procs = append(c.procs, StartProcess(t, c.Dir, "etcd", nil, etcd,
		"--name=kubetest", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=kubetest="+peer, "--logger=zap", "--log-level=warn"))
	return client
}

func (c *Cluster) startAPIServer(t *testing.T, bin string, p *pki, etcdURL string, extra []string) {
	t.Helper()
	port := FreePort(t)
	c.Server = "https://127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers=" + etcdURL, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port), "--cert-dir=" + filepath.Join(c.Dir, "apiserver"),
		"--tls-cert-file=" + p.serverCert, "--tls-private-key-file=" + p.serverKey, "--client-ca-file=" + p.caCert,
		"--service-account-key-file=" + p.saPub, "--service-account-signing-key-file=" + p.saKey,
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC", "--endpoint-reconciler-type=none", "--allow-privileged=true"}, extra...)
	c.procs = append(c.procs, StartProcess(t, c.Dir, "kube-apiserver", nil, args...))
	if err := c.waitReady(t, p); err != nil {
		t.Fatal(err)
	}
}

// waitReady polls /readyz until it answers 200 (3 minutes at most: the
// machine may be busy).
func (c *Cluster) waitReady(t *testing.T, p *pki) error {
	cert, err := tls.X509KeyPair(p.adminCertPEM, p.adminKeyPEM)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.caPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}}
	deadline := time.Now().Add(3 * time.Minute)
	last := "no answer"
	for time.Now().Before(deadline) {
		for _, pr := range c.procs {
			if err := pr.Exited(); err != nil {
				return err
			}
		}
		resp, err := hc.Get(c.Server + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver %s not ready after 3 minutes: %s", c.Server, last)
}

func (c *Cluster) startControllers(t *testing.T, bin string, p *pki) {
	kc := "--kubeconfig=" + c.Kubeconfig
	c.procs = append(c.procs,
		StartProcess(t, c.Dir, "kube-controller-manager", nil, filepath.Join(bin, "kube-controller-manager"), kc,
			"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
			"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(FreePort(t)), "--leader-elect=false",
			"--service-account-private-key-file="+p.saKey, "--root-ca-file="+p.caCert,
			"--use-service-account-credentials=false", "--controllers=*"),
		StartProcess(t, c.Dir, "kube-scheduler", nil, filepath.Join(bin, "kube-scheduler"), kc,
			"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
			"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(FreePort(t)), "--leader-elect=false"),
		StartProcess(t, c.Dir, "kwok", nil, filepath.Join(bin, "kwok"), kc,
			"--config="+filepath.Join(bin, "kwok-stages.yaml"), "--manage-all-nodes=true",
			"--cidr=10.244.0.0/16", "--node-ip=127.0.0.1", "--server-address=127.0.0.1:"+strconv.Itoa(FreePort(t))))
}

// addNode creates the fake node that kwok keeps Ready, and waits for it.
func (c *Cluster) addNode(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	res := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("500"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: NodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels:      map[string]string{"kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"}},
		Status: corev1.NodeStatus{Allocatable: res, Capacity: res},
	}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating node %s: %v", NodeName, err)
	}
	c.Eventually(t, 2*time.Minute, "node "+NodeName+" Ready", func() (bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// Watch adds processes whose exit fails Eventually at once.
func (c *Cluster) Watch(ps ...*Process) { c.procs = append(c.procs, ps...) }

// Eventually polls cond every 250 ms until it is true, failing the test
// after timeout with the last error, or at once if a control-plane process
// has exited.
func (c *Cluster) Eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, p := range c.procs {
			if err := p.Exited(); err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
		}
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: not after %s (last error: %v)", what, timeout, last)
}

func kubeconfig(server string, p *pki) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return []byte(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: ` + server + `
    certificate-authority-data: ` + b64(p.caPEM) + `
users:
- name: admin
  user:
    client-certificate-data: ` + b64(p.adminCertPEM) + `
    client-key-data: ` + b64(p.adminKeyPEM) + `
contexts:
- name: kubetest
  context: {cluster: kubetest, user: admin}
current-context: kubetest
`)
}
