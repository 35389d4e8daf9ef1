package check

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/yannh/kubeconform/pkg/resource"
	"github.com/yannh/kubeconform/pkg/validator"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// clusterScoped lists the built-in kinds that have no namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ClusterRole": true,
	"ClusterRoleBinding": true, "CustomResourceDefinition": true, "StorageClass": true,
	"IngressClass": true, "PriorityClass": true, "ValidatingWebhookConfiguration": true,
	"MutatingWebhookConfiguration": true, "APIService": true, "CSIDriver": true, "CSINode": true,
	"RuntimeClass": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true, "VolumeAttachment": true,
	"FlowSchema": true, "PriorityLevelConfiguration": true, "IPAddress": true, "ServiceCIDR": true,
	"DeviceClass": true, "ResourceSlice": true, "CertificateSigningRequest": true,
}

// CRDs returns every CustomResourceDefinition in objs, decoded.
func CRDs(objs []Object) ([]*apiextensionsv1.CustomResourceDefinition, []error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	var errs []error
	for _, o := range objs {
		if o.Kind != "CustomResourceDefinition" {
			continue
		}
		v, err := Decode(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, v.(*apiextensionsv1.CustomResourceDefinition))
	}
	return out, errs
}

func scopes(objs []Object) map[string]bool {
	m := map[string]bool{}
	crds, _ := CRDs(objs)
	for _, c := range crds {
		m[c.Spec.Group+"/"+c.Spec.Names.Kind] = c.Spec.Scope == apiextensionsv1.NamespaceScoped
	}
	return m
}

// Namespaced reports whether o's kind lives in a namespace. Unknown custom
// kinds count as namespaced (Validate reports them).
func (t *Tree) Namespaced(o Object) bool {
	group, _, _ := strings.Cut(o.APIVersion, "/")
	if !strings.Contains(o.APIVersion, "/") {
		group = ""
	}
	if ns, ok := t.Scopes[group+"/"+o.Kind]; ok {
		return ns
	}
	return !clusterScoped[o.Kind]
}

// NewValidator writes a strict JSON schema for every version of every CRD
// into dir, the way kubeconform's openapi2jsonschema.py does, and returns a
// kubeconform validator that reads them.
func NewValidator(dir string, crds []*apiextensionsv1.CustomResourceDefinition) (validator.Validator, error) {
	for _, c := range crds {
		for _, v := range c.Spec.Versions {
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			b, err := json.Marshal(v.Schema.OpenAPIV3Schema)
			if err != nil {
				return nil, err
			}
			var s map[string]any
			if err := json.Unmarshal(b, &s); err != nil {
				return nil, err
			}
			strictSchema(s)
			out, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			name := fmt.Sprintf("%s_%s.json", strings.ToLower(c.Spec.Names.Kind), v.Name)
			if err := os.MkdirAll(filepath.Join(dir, c.Spec.Group), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(dir, c.Spec.Group, name), out, 0o644); err != nil {
				return nil, err
			}
		}
	}
	loc := filepath.Join(dir, "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json")
	return validator.New([]string{loc}, validator.Opts{Strict: true, KubernetesVersion: strings.TrimPrefix(KubeVersion, "v")})
}

// strictSchema makes an OpenAPI v3 schema from a CRD a strict JSON schema:
// objects with properties reject unknown fields unless the CRD preserves
// them, int-or-string accepts both, nullable accepts null.
func strictSchema(s map[string]any) {
	if s["x-kubernetes-int-or-string"] == true {
		delete(s, "type")
		s["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
	}
	if s["nullable"] == true {
		if t, ok := s["type"].(string); ok {
			s["type"] = []any{t, "null"}
		}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		if _, set := s["additionalProperties"]; !set && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				strictSchema(m)
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if m, ok := s[k].(map[string]any); ok {
			strictSchema(m)
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if l, ok := s[k].([]any); ok {
			for _, e := range l {
				if m, ok := e.(map[string]any); ok {
					strictSchema(m)
				}
			}
		}
	}
}

// validateCustom validates a custom resource with kubeconform.
func validateCustom(v validator.Validator, o Object) error {
	r := v.ValidateResource(resource.Resource{Path: o.Origin, Bytes: o.JSON})
	switch r.Status {
	case validator.Valid:
		return nil
	case validator.Invalid:
		var msgs []string
		for _, e := range r.ValidationErrors {
			msgs = append(msgs, fmt.Sprintf("%s: %s", e.Path, e.Msg))
		}
		return fmt.Errorf("%s: does not match its CRD: %s", o, strings.Join(msgs, "; "))
	default:
		if r.Err != nil && strings.Contains(r.Err.Error(), "could not find schema") {
			return fmt.Errorf("%s: no CRD in the tree defines %s", o, o.APIVersion+" "+o.Kind)
		}
		return fmt.Errorf("%s: %v", o, r.Err)
	}
}
