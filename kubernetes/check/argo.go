package check

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// RootApplication is the name of the app-of-apps root; its repoURL defines
// "this repository".
const RootApplication = "root"

// Application is the part of an ArgoCD Application the checks read. The
// object itself is validated against ArgoCD's own CRD schema.
type Application struct {
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Annotations map[string]string `json:"annotations"`
		Finalizers  []string          `json:"finalizers"`
	} `json:"metadata"`
	Spec struct {
		Project     string      `json:"project"`
		Source      *AppSource  `json:"source"`
		Sources     []AppSource `json:"sources"`
		Destination struct {
			Server    string `json:"server"`
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"destination"`
		SyncPolicy *struct {
			Automated *struct {
				Prune    bool `json:"prune"`
				SelfHeal bool `json:"selfHeal"`
			} `json:"automated"`
			SyncOptions []string `json:"syncOptions"`
			Retry       *struct {
				Limit   int64 `json:"limit"`
				Backoff *struct {
					Duration    string `json:"duration"`
					Factor      int64  `json:"factor"`
					MaxDuration string `json:"maxDuration"`
				} `json:"backoff"`
			} `json:"retry"`
		} `json:"syncPolicy"`
	} `json:"spec"`
}

// AppSource is one source of an Application.
type AppSource struct {
	RepoURL        string `json:"repoURL"`
	Path           string `json:"path"`
	TargetRevision string `json:"targetRevision"`
	Chart          string `json:"chart"`
	Ref            string `json:"ref"`
	Helm           *struct {
		ReleaseName string   `json:"releaseName"`
		ValueFiles  []string `json:"valueFiles"`
	} `json:"helm"`
}

// AllSources returns source and sources together.
func (a *Application) AllSources() []AppSource {
	if a.Spec.Source != nil {
		return append([]AppSource{*a.Spec.Source}, a.Spec.Sources...)
	}
	return a.Spec.Sources
}

// Wave is the Application's sync wave (0 when unset).
func (a *Application) Wave() (int, error) {
	s, ok := a.Metadata.Annotations[syncWave]
	if !ok {
		return 0, nil
	}
	w, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("Application %s: sync-wave %q is not an integer", a.Metadata.Name, s)
	}
	return w, nil
}

// HasSyncOption reports whether the Application sets opt (e.g.
// "ServerSideApply=true").
func (a *Application) HasSyncOption(opt string) bool {
	if a.Spec.SyncPolicy == nil {
		return false
	}
	for _, o := range a.Spec.SyncPolicy.SyncOptions {
		if o == opt {
			return true
		}
	}
	return false
}

const (
	syncWave    = "argocd.argoproj.io/sync-wave"
	syncOptions = "argocd.argoproj.io/sync-options"
)

// AppProject is the part of an ArgoCD AppProject the checks read.
type AppProject struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		SourceRepos  []string `json:"sourceRepos"`
		Destinations []struct {
			Server    string `json:"server"`
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"destinations"`
		ClusterResourceWhitelist   []GroupKind `json:"clusterResourceWhitelist"`
		NamespaceResourceBlacklist []GroupKind `json:"namespaceResourceBlacklist"`
		NamespaceResourceWhitelist []GroupKind `json:"namespaceResourceWhitelist"`
	} `json:"spec"`
}

// GroupKind is an entry of an AppProject resource list.
type GroupKind struct {
	Group string `json:"group"`
	Kind  string `json:"kind"`
}

// unmarshal decodes an object's JSON into v (not strictly: the schema
// validation is done by kubeconform against the CRD).
func unmarshal(o Object, v any) error {
	if err := json.Unmarshal(o.JSON, v); err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	return nil
}

// annotations returns an object's metadata.annotations.
func annotations(o Object) map[string]string {
	var m struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(o.JSON, &m)
	return m.Metadata.Annotations
}

// hasSyncOption reports whether the object's sync-options annotation lists
// opt.
func hasSyncOption(o Object, opt string) bool {
	for _, s := range strings.Split(annotations(o)[syncOptions], ",") {
		if strings.TrimSpace(s) == opt {
			return true
		}
	}
	return false
}

func sameRepo(a, b string) bool {
	norm := func(s string) string { return strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git") }
	return norm(a) == norm(b)
}
