package rebuild

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// bootParts are what a running system cannot take over without a reboot.
var bootParts = []string{"kernel", "initrd", "kernel-modules"}

// NeedsReboot compares the booted and the current system (e.g.
// /run/booted-system and /run/current-system) the way NixOS's auto-upgrade
// does: by where their kernel, initrd and kernel-modules links point. It
// returns true and the names of the parts that differ.
func NeedsReboot(booted, current string) (bool, []string, error) {
	var differ []string
	for _, part := range bootParts {
		b, err := resolve(booted, part)
		if err != nil {
			return false, nil, fmt.Errorf("comparing %s: %w", part, err)
		}
		c, err := resolve(current, part)
		if err != nil {
			return false, nil, fmt.Errorf("comparing %s: %w", part, err)
		}
		if b != c {
			differ = append(differ, part)
		}
	}
	return len(differ) > 0, differ, nil
}

// resolve returns where system/part finally points, or "" when the system
// has no such part (a container, say). A missing system is an error.
func resolve(system, part string) (string, error) {
	if _, err := os.Stat(system); err != nil {
		return "", err
	}
	p, err := filepath.EvalSymlinks(filepath.Join(system, part))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return p, err
}
