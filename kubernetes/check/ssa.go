package check

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// ServerSideApplyDrift reports custom resources that an Application applies
// server-side (ServerSideApply=true) and that can never be Synced: a field
// the CRD defaults is missing inside a value server-side apply owns whole
// (a list without x-kubernetes-list-type map or set, or an atomic map).
// ArgoCD then diffs with structured-merge-diff, which predicts the live
// object without CRD defaults, while the API server adds them: the default
// reads as drift forever, and selfHeal re-applies in a loop. (ArgoCD's
// first sync with external-secrets 1.3.1, whose CRD defaults remoteRef
// fields inside spec.data, left observability's ExternalSecret OutOfSync.)
// Outside atomic values a default is owned by no manager and kept, so it
// does not count.
func (t *Tree) ServerSideApplyDrift() []error {
	schemas := crdSchemas(t.AllObjects())
	var errs []error
	for _, a := range t.Apps {
		appSSA := a.HasSyncOption("ServerSideApply=true")
		for _, o := range a.Objects {
			s, ok := schemas[o.APIVersion+"/"+o.Kind]
			if !ok || !(appSSA || hasSyncOption(o, "ServerSideApply=true")) {
				continue
			}
			var v map[string]any
			if err := json.Unmarshal(o.JSON, &v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", o, err))
				continue
			}
			delete(v, "metadata")
			delete(v, "status")
			for _, d := range atomicDefaults(v, s, "", false) {
				errs = append(errs, fmt.Errorf("%s (Application %s, server-side apply): the API server defaults %s, which the manifest omits inside a value server-side apply owns whole: ArgoCD's diff sees the default as drift and the Application never becomes Synced; write the field", o, a.Metadata.Name, d))
			}
		}
	}
	return errs
}

// crdSchemas maps apiVersion/kind to the schema of that served version.
func crdSchemas(objs []Object) map[string]*apiextensionsv1.JSONSchemaProps {
	out := map[string]*apiextensionsv1.JSONSchemaProps{}
	crds, _ := CRDs(objs)
	for _, c := range crds {
		for _, v := range c.Spec.Versions {
			if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
				out[c.Spec.Group+"/"+v.Name+"/"+c.Spec.Names.Kind] = v.Schema.OpenAPIV3Schema
			}
		}
	}
	return out
}

// atomicDefaults walks v along its schema s and returns, as "path=default",
// each defaulted field missing inside an atomic value.
func atomicDefaults(v any, s *apiextensionsv1.JSONSchemaProps, path string, atomic bool) []string {
	if s == nil {
		return nil
	}
	var out []string
	switch v := v.(type) {
	case map[string]any:
		atomic = atomic || (s.XMapType != nil && *s.XMapType == "atomic")
		names := make([]string, 0, len(s.Properties))
		for name := range s.Properties {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			p := s.Properties[name]
			child, ok := v[name]
			if !ok {
				if atomic && p.Default != nil {
					out = append(out, fmt.Sprintf("%s=%s", strings.TrimPrefix(path+"."+name, "."), p.Default.Raw))
				}
				continue
			}
			out = append(out, atomicDefaults(child, &p, path+"."+name, atomic)...)
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			var extra []string
			for name := range v {
				if _, known := s.Properties[name]; !known {
					extra = append(extra, name)
				}
			}
			sort.Strings(extra)
			for _, name := range extra {
				out = append(out, atomicDefaults(v[name], s.AdditionalProperties.Schema, path+"."+name, atomic)...)
			}
		}
	case []any:
		if s.Items == nil || s.Items.Schema == nil {
			return nil
		}
		atomic = atomic || s.XListType == nil || *s.XListType == "atomic"
		for i, item := range v {
			out = append(out, atomicDefaults(item, s.Items.Schema, fmt.Sprintf("%s[%d]", path, i), atomic)...)
		}
	}
	return out
}
