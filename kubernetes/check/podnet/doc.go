// Package podnet tests a pod's network set-up with real packets: its tests
// run the scripts of marmithon's rendered Deployment (the egress lock of the
// init container, the routing set-up of the tailscale sidecar) inside
// network namespaces, with iptables-legacy as in the tailscale image, and
// send traffic as the bot's UID to a fake internet, through a fake home
// uplink and a tunnel standing in for tailscale0.
//
// The tests need root, iproute2 and iptables-legacy (.ci/install). Only the
// namespaces they create carry traffic.
package podnet
