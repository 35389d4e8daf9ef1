package check

import (
	"context"
	"testing"
)

const (
	apps        = "kubernetes/clusters/main/apps/"
	infra       = "kubernetes/clusters/main/infra/"
	base        = "kubernetes/base/"
	marmDeploy  = base + "apps/marmithon/deployment.yaml"
	traefikVals = base + "infra/networking/values.yaml"
	site        = base + "components/site/site.yaml"
	zone        = "nixos/hosts/mysecrets/internal.zone"
)

func one(file, old, new string) []change { return []change{{file, old, new}} }

// Defect 1: a first sync that never converges.
func TestFirstSyncOrder(t *testing.T) {
	runMutations(t, []mutation{
		{"Ingress in the argocd app (wave -5)", []change{
			{base + "infra/argocd/ingress.yaml", "", `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: argocd-server
spec:
  ingressClassName: traefik
  rules:
    - host: argocd.internal
`},
			{base + "infra/argocd/kustomization.yaml", "  - upstream/install.yaml\n", "  - upstream/install.yaml\n  - ingress.yaml\n"},
		}, "waits for a load-balancer status from the controller of IngressClass traefik, which arrives in wave -4"},
		{"no Application health check", one(base+"infra/argocd/argocd-cm.yaml", "io_Application", "io_Nothing"),
			"sync waves order nothing"},
		{"ExternalSecret before its CRD", one(infra+"tailscale.yaml", `sync-wave: "-2"`, `sync-wave: "-4"`),
			"needs the CRD of external-secrets.io/ExternalSecret, which arrives in wave -3"},
		{"CRD and resource in one app without SkipDryRun", one(infra+"cert-manager.yaml", "      - SkipDryRunOnMissingResource=true\n", ""),
			"set SyncOption SkipDryRunOnMissingResource=true"},
		{"Secret from a later wave", one(infra+"external-secrets.yaml", `sync-wave: "-3"`, `sync-wave: "2"`),
			"reads from ClusterSecretStore bitwarden, which arrives in wave 2"},
		{"K5: ClusterIssuer health Degraded while step-ca is unreachable", one(base+"infra/argocd/argocd-cm.yaml",
			"  resource.customizations.health.cert-manager.io_ClusterIssuer: |\n", "  resource.customizations.health.cert-manager.io_ClusterIssuerX: |\n"),
			"argocd-cm needs resource.customizations.health.cert-manager.io_ClusterIssuer"},
		{"CRD Degraded until established", one(base+"infra/argocd/argocd-cm.yaml",
			"  resource.customizations.health.apiextensions.k8s.io_CustomResourceDefinition: |\n", "  resource.customizations.health.apiextensions.k8s.io_CustomResourceDefinitionX: |\n"),
			"argocd-cm needs resource.customizations.health.apiextensions.k8s.io_CustomResourceDefinition"},
		{"K1: cluster-scoped Application without a destination namespace", one(infra+"security.yaml", "    namespace: kube-system\n", ""),
			"Application security: no destination namespace"},
	})
}

// Defect 2: no ingress at all.
func TestIngressController(t *testing.T) {
	runMutations(t, []mutation{
		{"chart 39 values layout", one(traefikVals, "    http:\n      redirections:\n", "    redirections:\n"),
			"values don't meet the specifications of the schema"},
		{"LoadBalancer Service without servicelb", one(traefikVals, "    type: ClusterIP", "    type: LoadBalancer"),
			"waits for an address from a load-balancer controller"},
		{"no Ingress status", one(traefikVals, "  - --providers.kubernetesingress.ingressendpoint.hostname=ingress.internal\n", ""),
			"Traefik publishes no load-balancer status"},
		{"DaemonSet with host ports surging", one(traefikVals, "    maxSurge: 0", "    maxSurge: 1"),
			"binds host ports but rolls out with maxSurge 1"},
		{"chart version not vendored", one(infra+"networking.yaml", "targetRevision: 41.6.0", "targetRevision: 41.3.0"),
			"chart traefik 41.3.0 from https://traefik.github.io/charts is not vendored"},
	})
}

// Defect 3: no TLS.
func TestInternalCA(t *testing.T) {
	issuers := base + "infra/cert-manager/cluster-issuers.yaml"
	runMutations(t, []mutation{
		{"Kanidm's port", one(issuers, "https://ca.internal:8443/", "https://ca.internal/"),
			"uses port 443; step-ca listens on 8443"},
		{"no CA bundle", []change{
			{issuers, "    caBundle: UNSET\n", ""},
			{base + "infra/cert-manager/kustomization.yaml", "", "resources:\n  - cluster-issuers.yaml\n"},
		}, "no caBundle"},
		{"CA bundle not a certificate", one(site, "step-ca-root-ca: UNSET", "step-ca-root-ca: bm90LWEtY2VydA=="),
			"caBundle is not a base64-encoded PEM certificate"},
		{"no provisioner", one(issuers, "/acme/acme/directory", "/acme/other/directory"), "names no ACME provisioner"},
		{"no DNS record for an ingress host", one(zone, "home       CNAME ingress\n", ""),
			"host home.internal resolves to [] in internal.zone"},
		{"DNS record elsewhere", one(zone, "status     CNAME ingress", "status     CNAME mysecrets"),
			"host status.internal resolves to [10.0.0.2]"},
	})
}

// Defect 4: marmithon's egress.
func TestMarmithonFailsClosed(t *testing.T) {
	runMutations(t, []mutation{
		{"exit node by name", one(site, "exit-node-ip: UNSET", "exit-node-ip: exit-node"),
			"--exit-node=exit-node: name the exit node by its tailnet IPv4 address"},
		{"host network", one(marmDeploy, "      serviceAccountName: marmithon\n", "      serviceAccountName: marmithon\n      hostNetwork: true\n"),
			"hostNetwork: the bot would share the node's network"},
		{"NET_ADMIN on the bot", one(marmDeploy, "              drop: [\"ALL\"]\n            seccompProfile:", "              drop: [\"ALL\"]\n              add: [\"NET_ADMIN\"]\n            seccompProfile:"),
			"container marmithon has NET_ADMIN"},
		{"IPv4 lock only", one(marmDeploy, "for t in iptables ip6tables", "for t in iptables"),
			"no init container with NET_ADMIN rejects UID 65532's packets"},
		{"lock accepts eth0", one(marmDeploy, "-o tailscale0 -j ACCEPT", "-o eth0 -j ACCEPT"),
			"no init container with NET_ADMIN rejects UID 65532's packets"},
		{"bot as another UID", one(marmDeploy, "            runAsUser: 65532\n", "            runAsUser: 1000\n"),
			"rejects UID 1000's packets"},
		{"cluster DNS", one(marmDeploy, `dnsPolicy: "None"`, `dnsPolicy: "ClusterFirst"`),
			`dnsPolicy "ClusterFirst": want "None"`},
		{"home resolver", one(marmDeploy, "          - 9.9.9.9", "          - 10.0.0.1"),
			"nameserver 10.0.0.1 is not a public address"},
		{"IRC port open", one(base+"apps/marmithon/networkpolicy.yaml", "          port: 443\n", "          port: 443\n        - protocol: TCP\n          port: 6697\n"),
			"allows TCP 6697 (IRC) to 0.0.0.0/0"},
		{"every port open", one(base+"apps/marmithon/networkpolicy.yaml", "      ports:\n        - protocol: UDP\n          port: 41641\n", "      ports: []\n    - ports:\n        - protocol: UDP\n          port: 41641\n"),
			"allows every port to 0.0.0.0/0"},
		{"K6: ACCEPT inserted before the lock", one(marmDeploy, "              set -eu\n              for t in",
			"              set -eu\n              iptables -I OUTPUT 1 -m owner --uid-owner 65532 -j ACCEPT\n              for t in"),
			`"-I" in the egress lock`},
		{"lock failures ignored", one(marmDeploy, "-j REJECT\n", "-j REJECT || true\n"), `"||" in the egress lock`},
		{"lock in another table", one(marmDeploy, "$t -w -A OUTPUT -m owner --uid-owner 65532 -j REJECT", "$t -w -A OUTPUT -m owner --uid-owner 65532 -j REJECT\n                $t -w -t raw -A OUTPUT -j ACCEPT"),
			`"-t" in the egress lock`},
		{"tailscaled's SOCKS5 proxy", one(marmDeploy, "            - name: TS_HOSTNAME\n", "            - name: TS_SOCKS5_SERVER\n              value: localhost:1055\n            - name: TS_HOSTNAME\n"),
			"TS_SOCKS5_SERVER=localhost:1055: tailscaled would proxy"},
		{"K9: exit node never re-applied", one(marmDeploy, "tailscale --socket=/tmp/tailscaled.sock set --exit-node=\"$EXIT_NODE_IP\" &&\n", ""),
			"TS_AUTH_ONCE=true and no `tailscale set --exit-node=`"},
		{"bot keeps running without the tunnel", one(marmDeploy, "              port: 9002\n            periodSeconds: 10", "              port: 9003\n            periodSeconds: 10"),
			"no livenessProbe on the sidecar's /healthz"},
	})
}

// Defect 5: identity loss.
func TestTailscaleIdentityKept(t *testing.T) {
	runMutations(t, []mutation{
		{"state Secret deleted with the app", one(base+"apps/marmithon/tailscale-state.yaml", "Prune=false,Delete=false", "Prune=false"),
			"sync-options lack Delete=false; the node identity would be lost"},
	})
}

// Defect 6: projects, retries, retention, host networking, scopes; and the
// upstream schemas.
func TestProjectsAndPolicies(t *testing.T) {
	projects := "kubernetes/clusters/main/projects.yaml"
	runMutations(t, []mutation{
		{"default project", one(apps+"marmithon.yaml", "project: apps", "project: default"), `Application marmithon: project "default"`},
		{"source outside the project", one(infra+"networking.yaml", "project: infra", "project: apps"),
			"source https://traefik.github.io/charts is not in AppProject apps's sourceRepos"},
		{"cluster kind not allowed", one(projects, "    - {group: networking.k8s.io, kind: IngressClass}\n", ""),
			"cluster-scoped networking.k8s.io/IngressClass is not in AppProject infra's clusterResourceWhitelist"},
		{"any cluster kind", one(projects, "    - {group: \"\", kind: Namespace}\n", "    - {group: \"*\", kind: \"*\"}\n"),
			"clusterResourceWhitelist */* allows every cluster-scoped kind"},
		{"namespace outside the project", one(projects, "    - {server: https://kubernetes.default.svc, namespace: tailscale}\n", ""),
			"namespace tailscale is not a destination of AppProject infra"},
		{"no retry", one(apps+"uptime-kuma.yaml", "      limit: 10\n", ""), "Application uptime-kuma: no syncPolicy.retry"},
		{"volume deleted with its app", one(base+"apps/uptime-kuma/pvc.yaml", "Delete=false,Prune=false", "Prune=false"),
			"sync-options lack Delete=false: its data would be deleted with the Application"},
		{"NetworkPolicy on host network", []change{
			{base + "apps/home-assistant/kustomization.yaml", "resources:\n", "components:\n  - ../../components/default-deny-ingress\nresources:\n"},
		}, "selects only hostNetwork pods"},
		{"namespace on a ClusterSecretStore", one(base+"infra/external-secrets/kustomization.yaml", "components:\n", "namespace: external-secrets\ncomponents:\n"),
			"ClusterSecretStore is cluster-scoped but has namespace external-secrets"},
		{"unknown field in a custom resource", one(base+"apps/marmithon/externalsecrets.yaml", "  refreshInterval: 1h", "  refreshIntervall: 1h"),
			"does not match its CRD"},
		{"kind without a CRD", one(base+"apps/marmithon/externalsecrets.yaml", "apiVersion: external-secrets.io/v1\n", "apiVersion: external-secrets.io/v9\n"),
			"no CRD in the tree defines external-secrets.io/v9 ExternalSecret"},
		{"unknown field in a built-in kind", one(base+"apps/uptime-kuma/deployment.yaml", "  replicas: 1", "  replica: 1"),
			`unknown field "spec.replica"`},
		{"bootstrap Secret with data", one(base+"apps/marmithon/tailscale-state.yaml", "type: Opaque", "type: Opaque\nstringData:\n  key: value"),
			"Secret carries data in git"},
	})
}

// TestUnsetValues lists the site values still UNSET, and forgets one once
// it is filled in.
func TestUnsetValues(t *testing.T) {
	root := copyTree(t)
	before, err := UnsetValues(root)
	if err != nil {
		t.Fatal(err)
	}
	edit(t, root, change{site, "exit-node-ip: UNSET", "exit-node-ip: 100.101.102.103"})
	after, err := UnsetValues(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)-1 {
		t.Errorf("UnsetValues() = %v before filling exit-node-ip and %v after; want exactly it gone", before, after)
	}
	for _, u := range after {
		if u == "exit-node-ip" {
			t.Errorf("UnsetValues() after filling = %v; still lists exit-node-ip", after)
		}
	}
	r := Check(context.Background(), root, scratch)
	for _, err := range r.Errors {
		t.Errorf("Check() with exit-node-ip filled in: %v", err)
	}
}

// Issue 24: what the static checker can see of K3, K6, K9, K10.
func TestReviewFindings(t *testing.T) {
	solver := base + "components/default-deny-ingress/acme-http01-solver.yaml"
	runMutations(t, []mutation{
		{"K3: default-deny without the solver policy", one(base+"components/default-deny-ingress/kustomization.yaml", "  - acme-http01-solver.yaml\n", ""),
			"denies cert-manager's HTTP-01 solver pods"},
		{"K3: solver port closed", one(solver, "port: 8089", "port: 8080"), "denies cert-manager's HTTP-01 solver pods"},
		{"K3: solver open to the wrong namespace", one(solver, "kubernetes.io/metadata.name: networking", "kubernetes.io/metadata.name: kube-system"),
			"denies cert-manager's HTTP-01 solver pods"},
		{"K7: external-secrets back at the end-of-life chart", one(infra+"external-secrets.yaml", "targetRevision: 2.9.0", "targetRevision: 1.3.1"),
			"chart external-secrets 1.3.1 from https://charts.external-secrets.io is not vendored"},
		{"K7: a Bitwarden field 2.9.0's CRD does not have", one(base+"infra/external-secrets/cluster-secret-store.yaml", "      bitwardenServerSDKURL:", "      bitwardenServerSdkURL:"),
			"does not match its CRD"},
		{"K10: scheduler alerts on k3s", one(base+"infra/observability/values.yaml", "kubeScheduler:\n  enabled: false\n", ""),
			"alert KubeSchedulerDown fires forever on k3s"},
		{"K10: kube-proxy alerts on k3s", one(base+"infra/observability/values.yaml", "kubeProxy:\n  enabled: false\n", ""),
			"alert KubeProxyDown fires forever on k3s"},
	})
}

// What the first sync with ArgoCD's controller showed (kubernetes/check/
// firstsync): with external-secrets 1.3.1, whose CRD defaults remoteRef
// fields inside spec.data, observability's ExternalSecret (applied
// server-side) stayed OutOfSync. 2.9.0 defaults none there; a default inside
// a data item brings it back.
func TestServerSideApplyDrift(t *testing.T) {
	grafana := base + "infra/observability/grafana-admin.yaml"
	runMutations(t, []mutation{
		{"generator reference without apiVersion", one(grafana, "        key: grafana-admin-password\n",
			"        key: grafana-admin-password\n      sourceRef:\n        generatorRef:\n          kind: Password\n          name: grafana-admin\n"),
			"defaults spec.data[1].sourceRef.generatorRef.apiVersion=\"generators.external-secrets.io/v1alpha1\""},
	})
}
