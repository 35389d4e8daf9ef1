package secrets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Handover gives each secret of gen that Install left to root, because its
// owner or group did not exist yet, to its declared owner and group. It
// runs once the activation has created them (a fresh host's first
// deployment: kanidm, step-ca, vaultwarden users come with the system),
// as sops-nix installs secrets for users after the users activation step.
// It only touches files still owned by root:root whose declaration says
// otherwise, so it is idempotent and never undoes an owner set on purpose.
// It returns the names handed over; an owner that still does not exist is
// an error wrapping ErrManifest (the system declares a user it never
// creates), and the file stays root's.
func (s *Store) Handover(gen Generation, m *Manifest) (handed []string, err error) {
	var errs []error
	for _, sec := range m.Secrets {
		o, err := resolveOwner(sec)
		if err != nil {
			if errors.Is(err, errNoOwnerYet) {
				err = fmt.Errorf("%w: %w", ErrManifest, err)
			}
			errs = append(errs, fmt.Errorf("secret %q: %w", sec.Name, err))
			continue
		}
		if o == root {
			continue
		}
		p := filepath.Join(gen.Path, filepath.FromSlash(sec.Name))
		fi, err := os.Lstat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %q: %w", sec.Name, err))
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || !fi.Mode().IsRegular() || st.Uid != 0 || st.Gid != 0 {
			continue
		}
		if err := os.Lchown(p, o.uid, o.gid); err != nil {
			errs = append(errs, fmt.Errorf("secret %q: handing over to %d:%d: %w", sec.Name, o.uid, o.gid, err))
			continue
		}
		handed = append(handed, sec.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return handed, fmt.Errorf("handing secrets over to their owners: %w", err)
	}
	return handed, nil
}
