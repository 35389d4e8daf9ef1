package bench

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A guest whose plug can be pulled: QEMU with TCG (KVM is unusable on these
// machines), Debian's cloud kernel, a busybox initramfs that loads the
// virtio modules, and an ext4 root made with mkfs.ext4 -d from the cached
// Debian rootfs (.ci/rootfs: systemd, git, nix-bin). The disk is opened
// with cache=none, so what the guest had not flushed when QEMU is killed is
// lost, as on a host whose power fails; killing processes loses nothing.
//
// The guest's PID 1 is a script (vmInit) that does what a NixOS stage 2
// must for the agent (mounts, network, /run/current-system from the
// profile the bootloader would boot), starts the agent with its log on the
// console (ttyS0) and answers commands on ttyS1.

// vmCache holds what is built once per content: the initramfs and the base
// disk image.
func vmCache() string {
	if c := os.Getenv("AVALANCHE_CI_CACHE"); c != "" {
		return filepath.Join(c, "vm")
	}
	return "/var/cache/avalanche-ci/vm"
}

// vmModules are the modules the initramfs loads, in order: the disk, then
// the network the guest reaches the git server on.
var vmModules = []string{
	"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
	"kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
	"kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/block/virtio_blk.ko",
	"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko",
}

const initramfsInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
for m in MODULES; do /bin/busybox insmod /lib/modules/$m || echo "initramfs: insmod $m failed"; done
for i in $(/bin/busybox seq 50); do [ -b /dev/vda ] && break; /bin/busybox sleep 0.1; done
/bin/busybox mount -t ext4 /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda"; /bin/busybox poweroff -f; }
/bin/busybox umount /proc
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot /avalanche/init
`

// vmKernel returns the cloud kernel and its version; the test fails
// naming the package when it is missing.
func vmKernel(t testing.TB) (kernel, version string) {
	t.Helper()
	ks, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64")
	if len(ks) == 0 {
		t.Fatal("no /boot/vmlinuz-*-cloud-amd64: apt-get install linux-image-cloud-amd64 (.ci/install)")
	}
	slices.Sort(ks)
	kernel = ks[len(ks)-1]
	return kernel, strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
}

// vmInitramfs builds (once per kernel and content) the initramfs.
func vmInitramfs(t testing.TB, version string) string {
	t.Helper()
	for _, tool := range []string{"/usr/bin/busybox", "/usr/bin/cpio"} {
		if _, err := os.Stat(tool); err != nil {
			t.Fatalf("%s missing: apt-get install busybox-static cpio (.ci/install)", tool)
		}
	}
	var names []string
	for _, m := range vmModules {
		names = append(names, filepath.Base(m))
	}
	init := strings.Replace(initramfsInit, "MODULES", strings.Join(names, " "), 1)
	key := contentKey(version, init, fileDigest(t, "/usr/bin/busybox"))
	out := filepath.Join(vmCache(), "initramfs-"+key+".gz")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "dev", "proc", "newroot", "lib/modules"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	copyFile(t, "/usr/bin/busybox", filepath.Join(dir, "bin/busybox"), 0o755)
	for _, m := range vmModules {
		copyFile(t, filepath.Join("/lib/modules", version, m), filepath.Join(dir, "lib/modules", filepath.Base(m)), 0o644)
	}
	must(t, os.WriteFile(filepath.Join(dir, "init"), []byte(init), 0o755))
	must(t, os.MkdirAll(vmCache(), 0o755))
	tmp := fmt.Sprintf("%s.tmp-%d", out, os.Getpid())
	sh(t, "", "cd "+dir+" && find . | cpio -o -H newc --quiet | gzip -1 > "+tmp)
	must(t, os.Rename(tmp, out))
	return out
}

// guestNixConf: Nix in the guest builds as root, without build users or a
// sandbox (the rootfs has neither nixbld users nor user namespaces set up).
const guestNixConf = "build-users-group =\nsandbox = false\n"

// vmBaseImage returns an ext4 image of the cached rootfs (built once per
// rootfs), which each test copies and adds its files to with debugfs.
func vmBaseImage(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("../.ci/rootfs").Output()
	if err != nil {
		t.Fatalf(".ci/rootfs: %v (apt-get install debootstrap)", err)
	}
	rootfs := strings.TrimSpace(string(out))
	img := filepath.Join(vmCache(), "base-"+contentKey(rootfs, guestNixConf, "v1")+".img")
	if _, err := os.Stat(img); err == nil {
		return img
	}
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	sh(t, "", "cp -a "+rootfs+" "+root)
	must(t, os.MkdirAll(filepath.Join(root, "etc/nix"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc/nix/nix.conf"), []byte(guestNixConf), 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "avalanche"), 0o755))
	must(t, os.MkdirAll(vmCache(), 0o755))
	tmpImg := fmt.Sprintf("%s.tmp-%d", img, os.Getpid()) // two test binaries may build it at once
	sh(t, "", "mkfs.ext4 -q -F -L root -d "+root+" "+tmpImg+" 3G")
	must(t, os.Rename(tmpImg, img))
	return img
}

// vmDisk copies the base image to dir/disk.img and writes files into it
// (guest path → host path), with their modes.
func vmDisk(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	disk := filepath.Join(dir, "disk.img")
	sh(t, "", "cp --sparse=always "+vmBaseImage(t)+" "+disk)
	var cmds strings.Builder
	for _, guest := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(&cmds, "write %s %s\n", files[guest], guest)
	}
	script := filepath.Join(dir, "debugfs.cmds")
	must(t, os.WriteFile(script, []byte(cmds.String()), 0o644))
	sh(t, "", "debugfs -w -f "+script+" "+disk+" >/dev/null 2>&1 && e2fsck -fn "+disk+" >/dev/null")
	return disk
}

// vm is one running guest.
type vm struct {
	t       testing.TB
	dir     string
	disk    string
	kernel  string
	initrd  string
	console string // the console log, across boots
	ctlPath string
	proc    *exec.Cmd
	done    chan struct{}
	ctl     net.Conn
	ctlr    *bufio.Reader
	boots   int
}

// boot starts QEMU and waits until the guest's init answers on ttyS1.
func (v *vm) boot() {
	v.t.Helper()
	v.boots++
	f, err := os.OpenFile(v.console, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(v.t, err)
	fmt.Fprintf(f, "\n=== host: boot %d at %s\n", v.boots, time.Now().Format(time.RFC3339Nano))
	f.Close()
	os.Remove(v.ctlPath)
	// -cpu max: the host model aborts under TCG and qemu64 hangs.
	// no_timer_check: on a loaded machine TCG's timer is too slow for the
	// kernel's IO-APIC timer check, which then panics.
	cmd := exec.Command("qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1",
		"-display", "none", "-monitor", "none", "-no-reboot",
		"-kernel", v.kernel, "-initrd", v.initrd, "-append", "console=ttyS0 quiet panic=-1 no_timer_check",
		"-drive", "file="+v.disk+",format=raw,if=virtio,cache=none",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=",
		"-chardev", "file,id=con,append=on,path="+v.console, "-serial", "chardev:con",
		"-chardev", "socket,id=ctl,path="+v.ctlPath+",server=on,wait=off", "-serial", "chardev:ctl")
	qlog, err := os.OpenFile(filepath.Join(v.dir, "qemu.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(v.t, err)
	defer qlog.Close()
	cmd.Stdout, cmd.Stderr = qlog, qlog
	if err := cmd.Start(); err != nil {
		v.t.Fatalf("starting qemu-system-x86_64 (apt-get install qemu-system-x86): %v", err)
	}
	v.proc, v.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(v.done)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", v.ctlPath); err == nil {
			v.ctl, v.ctlr = c, bufio.NewReader(c)
			break
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("qemu's control socket never appeared:\n%s", tailFile(filepath.Join(v.dir, "qemu.log"), 2000))
		}
	}
	// What reaches ttyS1 before the guest opened it is lost: ask again.
	for deadline := time.Now().Add(5 * time.Minute); ; { // a loaded machine boots a TCG guest slowly
		_, err := v.call("ping", time.Second)
		if err == nil {
			return
		}
		select {
		case <-v.done:
			v.t.Fatalf("boot %d: qemu exited:\n%s", v.boots, v.consoleTail())
		default:
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("boot %d: the guest never answered: %v\n%s", v.boots, err, v.consoleTail())
		}
	}
}

// cut kills QEMU: the guest loses everything it had not flushed.
func (v *vm) cut() {
	if v.proc == nil {
		return
	}
	v.proc.Process.Kill() // safe once QEMU ended by itself: Wait has reaped it
	<-v.done
	v.proc = nil
	if v.ctl != nil {
		v.ctl.Close()
		v.ctl = nil
	}
}

// call sends a command to the guest's init and returns its answer, decoded.
func (v *vm) call(cmd string, timeout time.Duration) (string, error) {
	if v.ctl == nil {
		return "", fmt.Errorf("no guest")
	}
	v.ctl.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(v.ctl, cmd+"\n"); err != nil {
		return "", err
	}
	name, _, _ := strings.Cut(cmd, " ")
	for {
		line, err := v.ctlr.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("guest %q: %w", cmd, err)
		}
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "R "+name+" "); ok {
			b, err := base64.StdEncoding.DecodeString(rest)
			return string(b), err
		}
	}
}

// consoleSize and consoleTail read the console log (agent log included).
func (v *vm) consoleSize() int64 {
	fi, err := os.Stat(v.console)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (v *vm) consoleTail() string { return tailFile(v.console, 8000) }

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func contentKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return fmt.Sprintf("%x", h.Sum(nil))[:12]
}

func fileDigest(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	must(t, err)
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, mode))
}

func sh(t testing.TB, dir, script string) string {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
