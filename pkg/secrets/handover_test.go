package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// addUser creates a system user the way a NixOS activation does, and
// removes it when the test ends.
func addUser(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	if out, err := exec.Command("/usr/sbin/useradd", "--system", "--no-create-home", "--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s (the secrets tests run as root; Debian's passwd package has it): %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("/usr/sbin/userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// A fresh host's first deployment declares secrets for users that only its
// activation creates (issue 25 item 10): Install writes them as root's
// instead of refusing, and Handover gives them to their owner once the
// user exists; an owner that never comes is the manifest's fault.
func TestInstallBeforeOwnerExistsThenHandover(t *testing.T) {
	name := fmt.Sprintf("avt-ho-%d", os.Getpid()%100000)
	s := newStore(t)
	m := &Manifest{Version: 1, Secrets: []Secret{
		{Name: "kanidm/admin", SopsFile: "/nix/store/a", Owner: name, Mode: "0400"},
		{Name: "shared", SopsFile: "/nix/store/b", Owner: "root", Group: name, Mode: "0440"},
		{Name: "plain", SopsFile: "/nix/store/c"},
	}}
	values := map[string][]byte{"kanidm/admin": []byte("pw"), "shared": []byte("s"), "plain": []byte("p")}
	gen, _, err := s.Install(context.Background(), m, values)
	if err != nil {
		t.Fatalf("Install before %s exists = %v; want it installed as root's", name, err)
	}
	for _, n := range []string{"kanidm/admin", "shared"} {
		if uid, gid := ownerOf(t, filepath.Join(gen.Path, n)); uid != 0 || gid != 0 {
			t.Errorf("%s before the handover is %d:%d; want root's", n, uid, gid)
		}
	}
	if _, err := s.Handover(gen, m); !errors.Is(err, ErrManifest) {
		t.Errorf("Handover while %s does not exist = %v; want ErrManifest", name, err)
	}

	uid, gid := addUser(t, name) // what the activation does
	handed, err := s.Handover(gen, m)
	if err != nil || !cmp.Equal(handed, []string{"kanidm/admin", "shared"}) {
		t.Fatalf("Handover = %q, %v; want both secrets handed over", handed, err)
	}
	for n, want := range map[string][2]int{"kanidm/admin": {uid, gid}, "shared": {0, gid}, "plain": {0, 0}} {
		if u, g := ownerOf(t, filepath.Join(gen.Path, n)); u != want[0] || g != want[1] {
			t.Errorf("%s after the handover is %d:%d; want %d:%d", n, u, g, want[0], want[1])
		}
	}
	if handed, err := s.Handover(gen, m); err != nil || len(handed) != 0 {
		t.Errorf("second Handover = %q, %v; want nothing to do", handed, err)
	}
}

func ownerOf(t *testing.T, p string) (uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}
