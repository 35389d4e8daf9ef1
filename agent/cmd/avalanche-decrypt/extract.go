package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/stores/json"
)

// extract returns the output of `sops decrypt` (key == "") or of
// `sops decrypt --extract` for the sops-nix style path key ("a/b" is
// ["a"]["b"]; a numeric component indexes a list).
func extract(tree *sops.Tree, store common.Store, key string) ([]byte, error) {
	if key == "" {
		return emit(store, tree.Branches)
	}
	v, err := lookup(tree.Branches[0], key)
	if err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case sops.TreeBranch:
		// Like sops: the first document is replaced by the subtree.
		branches := append(sops.TreeBranches{v}, tree.Branches[1:]...)
		return emit(store, branches)
	case string:
		return []byte(v), nil
	}
	out, err := store.EmitValue(v)
	if err != nil {
		return nil, fmt.Errorf("dumping value of key %q: %w", key, err)
	}
	return out, nil
}

func emit(store common.Store, branches sops.TreeBranches) ([]byte, error) {
	out, err := store.EmitPlainFile(branches)
	if errors.Is(err, json.BinaryStoreEmitPlainError) {
		return nil, fmt.Errorf("dumping file: %w (not an encrypted binary file? set the secret's format)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("dumping file: %w", err)
	}
	return out, nil
}

// lookup walks key's components through the tree. Unlike sops'
// TreeBranch.Truncate it reports, rather than panics on, a path that runs
// into a scalar.
func lookup(root sops.TreeBranch, key string) (interface{}, error) {
	var cur interface{} = root
	parts := strings.Split(key, "/")
	for i, c := range parts {
		next, err := step(cur, c)
		if err != nil {
			return nil, fmt.Errorf("key %q: at %q: %w", key, strings.Join(parts[:i+1], "/"), err)
		}
		cur = next
	}
	return cur, nil
}

func step(cur interface{}, c string) (interface{}, error) {
	switch cur := cur.(type) {
	case sops.TreeBranch:
		for _, item := range cur {
			if item.Key == c {
				return item.Value, nil
			}
		}
		return nil, errNotFound
	case []interface{}:
		i, err := strconv.Atoi(c)
		if err != nil || i < 0 || i >= len(cur) {
			return nil, fmt.Errorf("%w: not an index of a list of %d", errNotFound, len(cur))
		}
		return cur[i], nil
	}
	return nil, fmt.Errorf("%w: the value above is a scalar", errNotFound)
}
