package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// decode sets v from raw (what json.Unmarshal gives for `any`), field by
// field, so that one bad value does not hide the others: every problem is
// reported with its key path ("deploy.healthChecks[2]") and what the key
// wants. JSON null leaves a field as it is, as encoding/json does.
func decode(raw any, v reflect.Value, path string) []error {
	if raw == nil {
		return nil
	}
	switch {
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decode(raw, v.Elem(), path)
	case v.Kind() == reflect.Struct && !v.Addr().Type().Implements(unmarshaler):
		return decodeObject(raw, v, path)
	case v.Kind() == reflect.Slice:
		return decodeList(raw, v, path)
	}
	b, _ := json.Marshal(raw) // raw came from json.Unmarshal
	if err := json.Unmarshal(b, v.Addr().Interface()); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return []error{fmt.Errorf("%s: %s is not %s", keyName(path), b, want(v.Type()))}
		}
		return []error{fmt.Errorf("%s: %w", keyName(path), err)}
	}
	return nil
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

func decodeObject(raw any, v reflect.Value, path string) []error {
	obj, ok := raw.(map[string]any)
	if !ok {
		b, _ := json.Marshal(raw)
		return []error{fmt.Errorf("%s: %s is not %s", keyName(path), b, want(v.Type()))}
	}
	fields := map[string]int{}
	for i := 0; i < v.NumField(); i++ {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		i, ok := fields[k]
		if !ok {
			errs = append(errs, unknownKey(path+k, fields))
			continue
		}
		errs = append(errs, decode(obj[k], v.Field(i), path+k+".")...)
	}
	return errs
}

// unknownKey names the key and, for a mistyped case, the key it resembles.
func unknownKey(key string, fields map[string]int) error {
	base := key[strings.LastIndex(key, ".")+1:]
	for name := range fields {
		if strings.EqualFold(name, base) {
			return fmt.Errorf("%s: unknown key (did you mean %q?)", key, key[:len(key)-len(base)]+name)
		}
	}
	return fmt.Errorf("%s: unknown key (see docs/config.md for the keys)", key)
}

func decodeList(raw any, v reflect.Value, path string) []error {
	list, ok := raw.([]any)
	if !ok {
		b, _ := json.Marshal(raw)
		return []error{fmt.Errorf("%s: %s is not %s", keyName(path), b, want(v.Type()))}
	}
	out := reflect.MakeSlice(v.Type(), len(list), len(list))
	var errs []error
	for i, item := range list {
		errs = append(errs, decode(item, out.Index(i), fmt.Sprintf("%s[%d].", keyName(path), i))...)
	}
	v.Set(out)
	return errs
}

// keyName turns the walk's path ("deploy.reboot.") into a key path; the
// top level is "config".
func keyName(path string) string {
	if path == "" {
		return "config"
	}
	return strings.TrimSuffix(path, ".")
}

// want says in words what a value of type t looks like in config.json.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}
