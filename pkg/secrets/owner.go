package secrets

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
)

// owner is a resolved file owner.
type owner struct {
	uid, gid int
}

// root owns a secret whose owner does not exist yet.
var root = owner{}

// errNoOwnerYet marks an owner or group name the user database does not
// know (yet): on a fresh host the first activation creates it.
var errNoOwnerYet = errors.New("does not exist (yet)")

// resolveOwner turns a secret's Owner and Group into ids. Names are looked
// up with os/user; numeric ids are taken as they are. An empty Owner is
// root; an empty Group is the owner's primary group when the user database
// knows the owner, else root. A name the database does not know is an
// error wrapping errNoOwnerYet.
func resolveOwner(s Secret) (owner, error) {
	o := owner{}
	primary := "0"
	if s.Owner != "" {
		u, err := lookupUser(s.Owner)
		if err != nil {
			return o, err
		}
		o.uid, _ = strconv.Atoi(u.Uid)
		if u.Gid != "" {
			primary = u.Gid
		}
	}
	group := s.Group
	if group == "" {
		group = primary
	}
	gid, err := lookupGroup(group)
	if err != nil {
		return o, err
	}
	o.gid = gid
	return o, nil
}

func lookupUser(name string) (*user.User, error) {
	if id, err := strconv.Atoi(name); err == nil {
		if id < 0 {
			return nil, fmt.Errorf("owner %q is negative", name)
		}
		if u, err := user.LookupId(name); err == nil {
			return u, nil
		}
		return &user.User{Uid: strconv.Itoa(id)}, nil
	}
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return nil, fmt.Errorf("owner %q %w", name, errNoOwnerYet)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up owner: %w", err)
	}
	return u, nil
}

func lookupGroup(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		if id < 0 {
			return 0, fmt.Errorf("group %q is negative", name)
		}
		return id, nil
	}
	g, err := user.LookupGroup(name)
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		return 0, fmt.Errorf("group %q %w", name, errNoOwnerYet)
	}
	if err != nil {
		return 0, fmt.Errorf("looking up group: %w", err)
	}
	return strconv.Atoi(g.Gid)
}
