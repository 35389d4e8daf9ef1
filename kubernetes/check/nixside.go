package check

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// NixSide is what the NixOS side of the repository says about the
// cluster's surroundings, read with nix-instantiate (no nixpkgs needed: the
// attributes read do not touch config or pkgs).
type NixSide struct {
	StepCA struct {
		Port         int      `json:"port"`
		DNSNames     []string `json:"dnsNames"`
		Provisioners []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"provisioners"`
	} `json:"stepCA"`
	// CAHost is the host running step-ca.
	CAHost string `json:"caHost"`
	// ZoneFile is the .internal zone served by knot.
	ZoneFile string `json:"zone"`
	// K3sServerFlags are the k3s servers' extra flags.
	K3sServerFlags []string `json:"k3sServerFlags"`
	// K3sServers are the hosts with role k3s-server.
	K3sServers []string `json:"k3sServers"`
}

const nixExpr = `{ root }: let
  caHost = "mysecrets";
  m = import (root + "/nixos/hosts/${caHost}/default.nix") { config = {}; pkgs = {}; lib = {}; };
  inv = import (root + "/nixos/lib/inventory.nix");
  servers = builtins.filter (n: builtins.elem "k3s-server" inv.${n}.roles) (builtins.attrNames inv);
  k3s = import (root + "/nixos/profiles/role-k3s-server.nix") {
    lib = {}; config = {}; host = { name = "x"; }; hostsWithRole = _: [ "x" ];
  };
in {
  inherit caHost;
  stepCA = {
    inherit (m.services.step-ca) port;
    inherit (m.services.step-ca.settings) dnsNames;
    provisioners = map (p: { inherit (p) type name; }) m.services.step-ca.settings.authority.provisioners;
  };
  zone = toString m.services.knot.settings.zone."internal".file;
  k3sServerFlags = k3s.services.k3s.extraFlags;
  k3sServers = servers;
}`

// ReadNixSide evaluates the NixOS files of repoRoot that the cluster
// depends on.
func ReadNixSide(ctx context.Context, repoRoot string) (NixSide, error) {
	var n NixSide
	err := EvalNix(ctx, repoRoot, nixExpr, "step-ca, knot zone, k3s flags", &n)
	return n, err
}

// EvalNix evaluates expr, a function of { root } (the absolute path of
// repoRoot), with nix-instantiate and decodes its JSON into v; what names
// what is read, for errors.
func EvalNix(ctx context.Context, repoRoot, expr, what string, v any) error {
	abs, err := filepath.Abs(repoRoot)
	if err != nil {
		return err
	}
	args := []string{"--eval", "--strict", "--json", "--argstr", "root", abs, "--expr", expr}
	cmd := exec.CommandContext(ctx, "nix-instantiate", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("nix-instantiate --eval (%s): %w: %s", what, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("decoding nix-instantiate output (%s): %w", what, err)
	}
	return nil
}

// LBProvider says what gives LoadBalancer Services an address: k3s's own
// servicelb unless the servers disable it.
func (n NixSide) LBProvider() string {
	if slices.Contains(n.K3sServerFlags, "--disable=servicelb") {
		return ""
	}
	return "k3s servicelb"
}

// Zone is a parsed DNS zone: owner name to its records.
type Zone map[string][]dns.RR

// ReadZone parses a zone file with miekg/dns.
func ReadZone(path string) (Zone, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	z := Zone{}
	zp := dns.NewZoneParser(bytes.NewReader(b), "", path)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		z[name] = append(z[name], rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("parsing zone %s: %w", path, err)
	}
	return z, nil
}

// Resolve follows CNAMEs to the A and AAAA addresses of name.
func (z Zone) Resolve(name string) []string {
	name = dns.Fqdn(strings.ToLower(name))
	var out []string
	for hops := 0; hops < 8; hops++ {
		var next string
		for _, rr := range z[name] {
			switch r := rr.(type) {
			case *dns.A:
				out = append(out, r.A.String())
			case *dns.AAAA:
				out = append(out, r.AAAA.String())
			case *dns.CNAME:
				next = strings.ToLower(r.Target)
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	slices.Sort(out)
	return out
}

// CAErrors checks every ACME issuer pointing into .internal against step-ca
// as NixOS configures it: host, port, provisioner, and a CA bundle, since
// step-ca's root is not in any public trust store.
func (t *Tree) CAErrors(n NixSide, z Zone) []error {
	var errs []error
	for _, o := range t.AllObjects() {
		if o.Kind != "ClusterIssuer" && o.Kind != "Issuer" {
			continue
		}
		var is struct {
			Spec struct {
				ACME *struct {
					Server   string `json:"server"`
					CABundle string `json:"caBundle"`
				} `json:"acme"`
			} `json:"spec"`
		}
		_ = json.Unmarshal(o.JSON, &is)
		if is.Spec.ACME == nil {
			continue
		}
		u, err := url.Parse(is.Spec.ACME.Server)
		if err != nil || !strings.HasSuffix(u.Hostname(), ".internal") {
			continue
		}
		errs = append(errs, acmeServerErrors(o, u, n, z)...)
		errs = append(errs, caBundleErrors(o, is.Spec.ACME.CABundle)...)
	}
	return errs
}

func acmeServerErrors(o Object, u *url.URL, n NixSide, z Zone) []error {
	var errs []error
	port := u.Port()
	if port == "" {
		port = "443"
	}
	if port != strconv.Itoa(n.StepCA.Port) {
		errs = append(errs, fmt.Errorf("%s: ACME server %s uses port %s; step-ca listens on %d (nixos/hosts/%s)", o, u, port, n.StepCA.Port, n.CAHost))
	}
	if !slices.Contains(n.StepCA.DNSNames, u.Hostname()) {
		errs = append(errs, fmt.Errorf("%s: ACME server host %s is not among step-ca's dnsNames %v", o, u.Hostname(), n.StepCA.DNSNames))
	}
	if got, want := z.Resolve(u.Hostname()), z.Resolve(n.CAHost+".internal"); len(got) == 0 || !slices.Equal(got, want) {
		errs = append(errs, fmt.Errorf("%s: %s resolves to %v in the .internal zone, not to %s (%v)", o, u.Hostname(), got, n.CAHost, want))
	}
	ok := false
	for _, p := range n.StepCA.Provisioners {
		ok = ok || p.Type == "ACME" && u.Path == "/acme/"+p.Name+"/directory"
	}
	if !ok {
		errs = append(errs, fmt.Errorf("%s: ACME directory path %s names no ACME provisioner of step-ca", o, u.Path))
	}
	return errs
}

func caBundleErrors(o Object, bundle string) []error {
	if bundle == "" {
		return []error{fmt.Errorf("%s: no caBundle: cert-manager would not trust step-ca's certificate", o)}
	}
	if bundle == Unset {
		return nil // listed by UnsetValues
	}
	pemBytes, err := base64.StdEncoding.DecodeString(bundle)
	if b, _ := pem.Decode(pemBytes); err != nil || b == nil || b.Type != "CERTIFICATE" {
		return []error{fmt.Errorf("%s: caBundle is not a base64-encoded PEM certificate", o)}
	}
	return nil
}

// DNSErrors checks that every .internal host name an Ingress serves, and
// the name Traefik publishes as its status, resolves in the zone to the
// addresses of the k3s servers, where Traefik binds ports 80 and 443: the
// names must work for browsers and for step-ca's HTTP-01 validation.
func (t *Tree) DNSErrors(n NixSide, z Zone) []error {
	var want []string
	for _, h := range n.K3sServers {
		want = append(want, z.Resolve(h+".internal")...)
	}
	slices.Sort(want)
	var errs []error
	for _, h := range t.ingressHosts() {
		if !strings.HasSuffix(h.name, ".internal") {
			continue
		}
		if got := z.Resolve(h.name); !slices.Equal(got, want) {
			errs = append(errs, fmt.Errorf("%s: host %s resolves to %v in %s; want the k3s servers' addresses %v",
				h.from, h.name, got, filepath.Base(n.ZoneFile), want))
		}
	}
	return errs
}

type ingressHost struct{ name, from string }

func (t *Tree) ingressHosts() []ingressHost {
	var out []ingressHost
	for _, o := range t.AllObjects() {
		var ing struct {
			Spec struct {
				Rules []struct{ Host string } `json:"rules"`
			} `json:"spec"`
		}
		switch {
		case o.Kind == "Ingress":
			_ = json.Unmarshal(o.JSON, &ing)
			for _, r := range ing.Spec.Rules {
				out = append(out, ingressHost{r.Host, o.String()})
			}
		case o.Kind == "Deployment" || o.Kind == "DaemonSet":
			spec, _ := podSpec(o)
			for _, c := range spec.Containers {
				for _, a := range c.Args {
					if h, ok := strings.CutPrefix(a, "--providers.kubernetesingress.ingressendpoint.hostname="); ok {
						out = append(out, ingressHost{h, o.String()})
					}
				}
			}
		}
	}
	return out
}
