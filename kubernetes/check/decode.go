package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

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

// Decode decodes o strictly: built-in kinds against the Kubernetes API types,
// the custom resources this tree uses against small structs of their own
// (unknown fields rejected, required fields checked). A kind it knows neither
// way is an error: add it to customKinds.
func Decode(o Object) (any, error) {
	gvk := schema.FromAPIVersionAndKind(o.APIVersion, o.Kind)
	if newCR, ok := customKinds[gvk]; ok {
		return decodeCustom(o, newCR())
	}
	if !scheme.Recognizes(gvk) {
		return nil, fmt.Errorf("%s: unknown kind %s: add a type for it to customKinds", o, gvk)
	}
	v, _, err := strict.Decode(o.JSON, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o, err)
	}
	return v, nil
}

func decodeCustom(o Object, v validator) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(o.JSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("%s: %w", o, err)
	}
	if errs := v.validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %w", o, errors.Join(errs...))
	}
	return v, nil
}
