package podnet

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/avalanche-fleet/avalanche/kubernetes/check"
)

// marmithonDir is the kustomization the tests render, relative to this
// package.
const marmithonDir = "../../base/apps/marmithon"

// containerboot is what the sidecar's script hands over to at its end; the
// test runs the script up to there and stands in for what containerboot
// and tailscaled do next.
const containerboot = "exec /usr/local/bin/containerboot"

// pod is what the tests take from marmithon's rendered Deployment.
type pod struct {
	// lock is the egress-lock init container; sidecar the tailscale one.
	lock, sidecar container
	// botUID is the bot container's runAsUser.
	botUID int64
}

// container is one container's /bin/sh -c script, environment and
// capabilities.
type container struct {
	name   string
	script string
	env    map[string]string
	caps   []string
}

func renderedPod(t *testing.T) pod {
	t.Helper()
	objs, err := check.Build(marmithonDir)
	if err != nil {
		t.Fatalf("Build(%s) = %v", marmithonDir, err)
	}
	var d *appsv1.Deployment
	for _, o := range objs {
		if o.Kind == "Deployment" && o.Name == "marmithon" {
			v, err := check.Decode(o)
			if err != nil {
				t.Fatal(err)
			}
			d = v.(*appsv1.Deployment)
		}
	}
	if d == nil {
		t.Fatalf("%s renders no Deployment marmithon", marmithonDir)
	}
	spec := d.Spec.Template.Spec
	var p pod
	for _, c := range spec.InitContainers {
		switch c.Name {
		case "egress-lock":
			p.lock = toContainer(t, c)
		case "tailscale":
			p.sidecar = toContainer(t, c)
		}
	}
	if p.lock.script == "" || p.sidecar.script == "" {
		t.Fatalf("Deployment marmithon: want init containers egress-lock and tailscale with /bin/sh -c scripts")
	}
	if strings.Count(p.sidecar.script, containerboot) != 1 || !strings.HasSuffix(strings.TrimSpace(p.sidecar.script), containerboot) {
		t.Fatalf("sidecar script does not end with %q; update the test's stand-in:\n%s", containerboot, p.sidecar.script)
	}
	for _, c := range spec.Containers {
		if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
			p.botUID = *c.SecurityContext.RunAsUser
		}
	}
	if p.botUID == 0 {
		t.Fatal("the bot container has no runAsUser")
	}
	return p
}

func toContainer(t *testing.T, c corev1.Container) container {
	t.Helper()
	if !slices.Equal(c.Command, []string{"/bin/sh", "-c"}) || len(c.Args) != 1 {
		t.Fatalf("container %s: command %q args %d: want /bin/sh -c and one script", c.Name, c.Command, len(c.Args))
	}
	out := container{name: c.Name, script: c.Args[0], env: map[string]string{}, caps: capabilities(c)}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = "from-" + e.Name
		}
		out.env[e.Name] = v
	}
	return out
}

// runtimeDefaultCaps is what containerd gives a container that drops
// nothing (its default spec).
var runtimeDefaultCaps = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
	"SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

// capabilities returns the bounding set the container runs with.
func capabilities(c corev1.Container) []string {
	sc := c.SecurityContext
	caps := slices.Clone(runtimeDefaultCaps)
	if sc == nil || sc.Capabilities == nil {
		return caps
	}
	for _, d := range sc.Capabilities.Drop {
		if d == "ALL" {
			caps = nil
		}
		caps = slices.DeleteFunc(caps, func(c string) bool { return c == string(d) })
	}
	for _, a := range sc.Capabilities.Add {
		if !slices.Contains(caps, string(a)) {
			caps = append(caps, string(a))
		}
	}
	return caps
}

// setprivArgs runs a command as root with exactly caps in its bounding,
// inheritable and ambient sets, as the container runtime would.
func setprivArgs(caps []string) []string {
	set := "-all"
	for _, c := range caps {
		set += ",+" + strings.ToLower(c)
	}
	return []string{"setpriv", "--bounding-set=" + set, "--inh-caps=" + set, "--"}
}

func (c container) environ(extra map[string]string) []string {
	var env []string
	for k, v := range c.env {
		env = append(env, fmt.Sprintf("%s=%s", k, v))
	}
	for k, v := range extra {
		env = append(env, fmt.Sprintf("%s=%s", k, v))
	}
	return env
}
