package check

import (
	"errors"
	"fmt"
	"regexp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// validator is a custom resource that checks its own required fields.
type validator interface {
	validate() []error
}

// customKinds are the custom resources the tree may use. Their structs model
// the fields this tree uses; a field they lack is rejected like a typo, so a
// new field means a line here.
var customKinds = map[schema.GroupVersionKind]func() validator{
	{Group: "argoproj.io", Version: "v1alpha1", Kind: "Application"}:          func() validator { return new(Application) },
	{Group: "external-secrets.io", Version: "v1", Kind: "ExternalSecret"}:     func() validator { return new(ExternalSecret) },
	{Group: "external-secrets.io", Version: "v1", Kind: "ClusterSecretStore"}: func() validator { return new(SecretStore) },
	{Group: "external-secrets.io", Version: "v1", Kind: "SecretStore"}:        func() validator { return new(SecretStore) },
	{Group: "cert-manager.io", Version: "v1", Kind: "ClusterIssuer"}:          func() validator { return new(Issuer) },
	{Group: "cert-manager.io", Version: "v1", Kind: "Issuer"}:                 func() validator { return new(Issuer) },
	{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}:            func() validator { return new(Certificate) },
}

// header is what every object has besides its spec.
type header struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
}

func (h header) validate() []error {
	if h.Metadata.Name == "" {
		return []error{errors.New("metadata.name is required")}
	}
	return nil
}

func required(errs []error, field, value string) []error {
	if value == "" {
		return append(errs, fmt.Errorf("%s is required", field))
	}
	return errs
}

// Application is an ArgoCD Application (argoproj.io/v1alpha1).
type Application struct {
	header
	Spec struct {
		Project              string           `json:"project"`
		Source               *AppSource       `json:"source,omitempty"`
		Sources              []AppSource      `json:"sources,omitempty"`
		Destination          appDestination   `json:"destination"`
		SyncPolicy           *appSyncPolicy   `json:"syncPolicy,omitempty"`
		IgnoreDifferences    []appIgnoreDiff  `json:"ignoreDifferences,omitempty"`
		RevisionHistoryLimit *int64           `json:"revisionHistoryLimit,omitempty"`
		Info                 []map[string]any `json:"info,omitempty"`
	} `json:"spec"`
}

// AppSource is one source of an Application.
type AppSource struct {
	RepoURL        string   `json:"repoURL"`
	Path           string   `json:"path,omitempty"`
	TargetRevision string   `json:"targetRevision,omitempty"`
	Chart          string   `json:"chart,omitempty"`
	Ref            string   `json:"ref,omitempty"`
	Helm           *appHelm `json:"helm,omitempty"`
}

type appHelm struct {
	ReleaseName             string         `json:"releaseName,omitempty"`
	ValueFiles              []string       `json:"valueFiles,omitempty"`
	Values                  string         `json:"values,omitempty"`
	ValuesObject            map[string]any `json:"valuesObject,omitempty"`
	IgnoreMissingValueFiles bool           `json:"ignoreMissingValueFiles,omitempty"`
	SkipCrds                bool           `json:"skipCrds,omitempty"`
}

type appDestination struct {
	Server    string `json:"server,omitempty"`
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

type appSyncPolicy struct {
	Automated *struct {
		Enabled    *bool `json:"enabled,omitempty"`
		Prune      bool  `json:"prune,omitempty"`
		SelfHeal   bool  `json:"selfHeal,omitempty"`
		AllowEmpty bool  `json:"allowEmpty,omitempty"`
	} `json:"automated,omitempty"`
	SyncOptions []string `json:"syncOptions,omitempty"`
	Retry       *struct {
		Limit   int64 `json:"limit,omitempty"`
		Backoff *struct {
			Duration    string `json:"duration,omitempty"`
			Factor      *int64 `json:"factor,omitempty"`
			MaxDuration string `json:"maxDuration,omitempty"`
		} `json:"backoff,omitempty"`
	} `json:"retry,omitempty"`
}

type appIgnoreDiff struct {
	Group             string   `json:"group,omitempty"`
	Kind              string   `json:"kind"`
	Name              string   `json:"name,omitempty"`
	Namespace         string   `json:"namespace,omitempty"`
	JSONPointers      []string `json:"jsonPointers,omitempty"`
	JQPathExpressions []string `json:"jqPathExpressions,omitempty"`
}

// exactVersion is a pinned chart version: no ranges, no wildcards.
var exactVersion = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// AllSources returns source and sources together.
func (a *Application) AllSources() []AppSource {
	if a.Spec.Source != nil {
		return append([]AppSource{*a.Spec.Source}, a.Spec.Sources...)
	}
	return a.Spec.Sources
}

func (a *Application) validate() []error {
	errs := a.header.validate()
	errs = required(errs, "spec.project", a.Spec.Project)
	if (a.Spec.Source == nil) == (len(a.Spec.Sources) == 0) {
		errs = append(errs, errors.New("exactly one of spec.source and spec.sources is required"))
	}
	for i, s := range a.AllSources() {
		errs = append(errs, s.validate(fmt.Sprintf("source %d", i))...)
	}
	if a.Spec.Destination.Server == "" && a.Spec.Destination.Name == "" {
		errs = append(errs, errors.New("spec.destination.server or .name is required"))
	}
	return errs
}

func (s AppSource) validate(where string) []error {
	errs := required(nil, where+": repoURL", s.RepoURL)
	switch {
	case s.Chart != "":
		if !exactVersion.MatchString(s.TargetRevision) {
			errs = append(errs, fmt.Errorf("%s: chart %s: targetRevision %q is not a pinned version", where, s.Chart, s.TargetRevision))
		}
	case s.Path == "" && s.Ref == "":
		errs = append(errs, fmt.Errorf("%s: one of chart, path and ref is required", where))
	}
	return errs
}

// ExternalSecret is an external-secrets.io/v1 ExternalSecret.
type ExternalSecret struct {
	header
	Spec struct {
		RefreshInterval string `json:"refreshInterval,omitempty"`
		SecretStoreRef  struct {
			Name string `json:"name"`
			Kind string `json:"kind,omitempty"`
		} `json:"secretStoreRef"`
		Target struct {
			Name           string         `json:"name,omitempty"`
			CreationPolicy string         `json:"creationPolicy,omitempty"`
			DeletionPolicy string         `json:"deletionPolicy,omitempty"`
			Template       map[string]any `json:"template,omitempty"`
		} `json:"target"`
		Data []struct {
			SecretKey string `json:"secretKey"`
			RemoteRef struct {
				Key                string `json:"key"`
				Property           string `json:"property,omitempty"`
				ConversionStrategy string `json:"conversionStrategy,omitempty"`
				DecodingStrategy   string `json:"decodingStrategy,omitempty"`
			} `json:"remoteRef"`
		} `json:"data,omitempty"`
		DataFrom []map[string]any `json:"dataFrom,omitempty"`
	} `json:"spec"`
}

// TargetName is the name of the Secret the ExternalSecret writes.
func (e *ExternalSecret) TargetName() string {
	if e.Spec.Target.Name != "" {
		return e.Spec.Target.Name
	}
	return e.Metadata.Name
}

func (e *ExternalSecret) validate() []error {
	errs := e.header.validate()
	errs = required(errs, "spec.secretStoreRef.name", e.Spec.SecretStoreRef.Name)
	if len(e.Spec.Data) == 0 && len(e.Spec.DataFrom) == 0 {
		errs = append(errs, errors.New("spec.data or spec.dataFrom is required"))
	}
	for i, d := range e.Spec.Data {
		errs = required(errs, fmt.Sprintf("spec.data[%d].secretKey", i), d.SecretKey)
		errs = required(errs, fmt.Sprintf("spec.data[%d].remoteRef.key", i), d.RemoteRef.Key)
	}
	return errs
}

type secretKeySelector struct {
	Name      string `json:"name"`
	Key       string `json:"key"`
	Namespace string `json:"namespace,omitempty"`
}

// SecretStore is an external-secrets.io/v1 (Cluster)SecretStore; only the
// Bitwarden Secrets Manager provider is modelled.
type SecretStore struct {
	header
	Spec struct {
		Provider struct {
			Bitwarden *struct {
				APIURL                string `json:"apiURL,omitempty"`
				IdentityURL           string `json:"identityURL,omitempty"`
				BitwardenServerSDKURL string `json:"bitwardenServerSDKURL"`
				CABundle              string `json:"caBundle,omitempty"`
				CAProvider            *struct {
					Type      string `json:"type"`
					Name      string `json:"name"`
					Key       string `json:"key,omitempty"`
					Namespace string `json:"namespace,omitempty"`
				} `json:"caProvider,omitempty"`
				OrganizationID string `json:"organizationID"`
				ProjectID      string `json:"projectID"`
				Auth           struct {
					SecretRef struct {
						Credentials secretKeySelector `json:"credentials"`
					} `json:"secretRef"`
				} `json:"auth"`
			} `json:"bitwardensecretsmanager,omitempty"`
		} `json:"provider"`
	} `json:"spec"`
}

func (s *SecretStore) validate() []error {
	errs := s.header.validate()
	bw := s.Spec.Provider.Bitwarden
	if bw == nil {
		return append(errs, errors.New("spec.provider.bitwardensecretsmanager is required"))
	}
	errs = required(errs, "bitwardenServerSDKURL", bw.BitwardenServerSDKURL)
	errs = required(errs, "organizationID", bw.OrganizationID)
	errs = required(errs, "projectID", bw.ProjectID)
	cred := bw.Auth.SecretRef.Credentials
	errs = required(errs, "auth.secretRef.credentials.name", cred.Name)
	errs = required(errs, "auth.secretRef.credentials.key", cred.Key)
	if s.Kind == "ClusterSecretStore" {
		errs = required(errs, "auth.secretRef.credentials.namespace", cred.Namespace)
	}
	if bw.CABundle == "" && bw.CAProvider == nil {
		errs = append(errs, errors.New("caBundle or caProvider is required: bitwarden-sdk-server speaks HTTPS only"))
	}
	return errs
}

// Issuer is a cert-manager.io/v1 (Cluster)Issuer.
type Issuer struct {
	header
	Spec struct {
		SelfSigned *struct{} `json:"selfSigned,omitempty"`
		CA         *struct {
			SecretName string `json:"secretName"`
		} `json:"ca,omitempty"`
		ACME *struct {
			Server              string `json:"server"`
			Email               string `json:"email,omitempty"`
			CABundle            string `json:"caBundle,omitempty"`
			PrivateKeySecretRef struct {
				Name string `json:"name"`
			} `json:"privateKeySecretRef"`
			Solvers []map[string]any `json:"solvers"`
		} `json:"acme,omitempty"`
	} `json:"spec"`
}

func (is *Issuer) validate() []error {
	errs := is.header.validate()
	n := 0
	if is.Spec.SelfSigned != nil {
		n++
	}
	if ca := is.Spec.CA; ca != nil {
		n++
		errs = required(errs, "spec.ca.secretName", ca.SecretName)
	}
	if acme := is.Spec.ACME; acme != nil {
		n++
		errs = required(errs, "spec.acme.server", acme.Server)
		errs = required(errs, "spec.acme.privateKeySecretRef.name", acme.PrivateKeySecretRef.Name)
		if len(acme.Solvers) == 0 {
			errs = append(errs, errors.New("spec.acme.solvers: at least one is required"))
		}
	}
	if n != 1 {
		errs = append(errs, fmt.Errorf("exactly one issuer type (selfSigned, ca, acme) is required, got %d", n))
	}
	return errs
}

// Certificate is a cert-manager.io/v1 Certificate.
type Certificate struct {
	header
	Spec struct {
		SecretName  string   `json:"secretName"`
		CommonName  string   `json:"commonName,omitempty"`
		IsCA        bool     `json:"isCA,omitempty"`
		DNSNames    []string `json:"dnsNames,omitempty"`
		IPAddresses []string `json:"ipAddresses,omitempty"`
		Duration    string   `json:"duration,omitempty"`
		RenewBefore string   `json:"renewBefore,omitempty"`
		Usages      []string `json:"usages,omitempty"`
		Subject     *struct {
			Organizations []string `json:"organizations,omitempty"`
		} `json:"subject,omitempty"`
		PrivateKey *struct {
			Algorithm      string `json:"algorithm,omitempty"`
			Encoding       string `json:"encoding,omitempty"`
			Size           int    `json:"size,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind,omitempty"`
			Group string `json:"group,omitempty"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

func (c *Certificate) validate() []error {
	errs := c.header.validate()
	errs = required(errs, "spec.secretName", c.Spec.SecretName)
	errs = required(errs, "spec.issuerRef.name", c.Spec.IssuerRef.Name)
	if c.Spec.CommonName == "" && len(c.Spec.DNSNames) == 0 && len(c.Spec.IPAddresses) == 0 {
		errs = append(errs, errors.New("one of spec.commonName, dnsNames, ipAddresses is required"))
	}
	return errs
}
