package check

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/yannh/kubeconform/pkg/validator"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// scheme knows every built-in kind of the Kubernetes API plus
// CustomResourceDefinition.
var scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("building scheme: %v", err))
		}
	}
	return s
}

// strict rejects unknown and duplicate fields, like `kubectl apply
// --validate=strict`.
var strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
	kjson.SerializerOptions{Strict: true})

// Builtin reports whether o is a built-in Kubernetes kind (or a
// CustomResourceDefinition).
func Builtin(o Object) bool {
	return scheme.Recognizes(schema.FromAPIVersionAndKind(o.APIVersion, o.Kind))
}

// Decode decodes a built-in object strictly against the Kubernetes API
// types (unknown and duplicate fields rejected). Custom resources are
// validated by kubeconform against their CRDs instead (Validate).
func Decode(o Object) (any, error) {
	gvk := schema.FromAPIVersionAndKind(o.APIVersion, o.Kind)
	if !scheme.Recognizes(gvk) {
		return nil, fmt.Errorf("%s: not a built-in kind", o)
	}
	v, _, err := strict.Decode(o.JSON, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o, err)
	}
	return v, nil
}

// Validate checks every object: built-in kinds by strict decoding, custom
// resources with kubeconform against the CRDs found in objs (the CRDs that
// ArgoCD applies from the vendored charts and manifests). schemaDir is a
// scratch directory for the generated JSON schemas.
func Validate(schemaDir string, objs []Object) []error {
	v, errs := cachedValidator(schemaDir, objs)
	if v == nil {
		return errs
	}
	for _, o := range objs {
		if o.Kind == "CustomResourceDefinition" {
			continue // decoded by CRDs
		}
		if Builtin(o) {
			if _, err := Decode(o); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := validateCustom(v, o); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

var (
	validatorMu    sync.Mutex
	validatorCache = map[[sha256.Size]byte]validatorResult{}
)

type validatorResult struct {
	v    validator.Validator
	errs []error
}

// cachedValidator builds the kubeconform validator for the CRDs in objs
// once per scratch directory and distinct set of CRDs: compiling the schemas is the slow part,
// and the mutation tests check many trees with the same CRDs.
func cachedValidator(schemaDir string, objs []Object) (validator.Validator, []error) {
	h := sha256.New()
	h.Write([]byte(schemaDir + "\x00"))
	for _, o := range objs {
		if o.Kind == "CustomResourceDefinition" {
			h.Write(o.JSON)
		}
	}
	var key [sha256.Size]byte
	copy(key[:], h.Sum(nil))
	validatorMu.Lock()
	defer validatorMu.Unlock()
	if r, ok := validatorCache[key]; ok {
		return r.v, r.errs
	}
	crds, errs := CRDs(objs)
	v, err := NewValidator(schemaDir, crds)
	if err != nil {
		return nil, append(errs, fmt.Errorf("kubeconform: %w", err))
	}
	validatorCache[key] = validatorResult{v, errs}
	return v, errs
}
