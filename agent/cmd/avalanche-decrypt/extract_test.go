package main

import (
	"errors"
	"testing"

	"github.com/getsops/sops/v3"
	"github.com/google/go-cmp/cmp"
)

func TestLookup(t *testing.T) {
	root := sops.TreeBranch{
		{Key: "db", Value: sops.TreeBranch{{Key: "password", Value: "pw"}, {Key: "port", Value: 5432}}},
		{Key: "list", Value: []interface{}{"a", sops.TreeBranch{{Key: "x", Value: "y"}}}},
	}
	tests := []struct {
		key  string
		want interface{}
		err  bool
	}{
		{key: "db/password", want: "pw"},
		{key: "db/port", want: 5432},
		{key: "list/0", want: "a"},
		{key: "list/1/x", want: "y"},
		{key: "list/2", err: true},
		{key: "list/-1", err: true},
		{key: "db/password/deeper", err: true},
		{key: "nope", err: true},
	}
	for _, tt := range tests {
		got, err := lookup(root, tt.key)
		if tt.err {
			if !errors.Is(err, errNotFound) {
				t.Errorf("lookup(%q) = %v, %v; want errNotFound", tt.key, got, err)
			}
			continue
		}
		if err != nil || !cmp.Equal(got, tt.want) {
			t.Errorf("lookup(%q) = %v, %v; want %v", tt.key, got, err, tt.want)
		}
	}
}
