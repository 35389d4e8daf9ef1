package bench

// The power-cut guest's own programs, written into its disk image.

// guestInit is the guest's PID 1: what a NixOS stage 2 does for the agent
// (mounts, /run/current-system and /run/booted-system from the profile the
// bootloader boots), the network to the host's git server (10.0.2.2 under
// QEMU's user networking), the agent with its log on the console, and a
// command loop on ttyS1 that answers "R <command> <base64>" lines.
const guestInit = `#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
hostname avalanche-test
ip link set lo up && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
if sys=$(readlink -f /nix/var/nix/profiles/system) && [ -e "$sys" ]; then
  ln -sfn "$sys" /run/current-system && ln -sfn "$sys" /run/booted-system
fi
# Every switch that ran when the power went is over.
echo cut >>/var/log/avalanche-switch.log
echo "guest: up $(cut -d' ' -f1 /proc/uptime) s, boot $(cat /proc/sys/kernel/random/boot_id)" >/dev/ttyS0
agent=
start_agent() {
  AVALANCHE_FAILPOINT_DELAY=0s /avalanche/avalanche-agent run --config /avalanche/config.json >/dev/ttyS0 2>&1 &
  agent=$!
}
start_agent
stty -F /dev/ttyS1 raw -echo
exec 3<>/dev/ttyS1
reply() { printf 'R %s %s\n' "$1" "$(base64 -w0)" >&3; }
cfg=/avalanche/config.json
while read -r -u 3 cmd; do
  case "$cmd" in
  ping) echo pong | reply ping ;;
  status)
    { /avalanche/avalanche-agent status --json --config $cfg 2>/dev/null || echo '{}'
      echo '@@'; cat /var/lib/avalanche-agent/state.json 2>/dev/null
      echo '@@'; stat -c %s /var/lib/avalanche-agent/journal 2>/dev/null; } | reply status ;;
  sync) /avalanche/avalanche-agent sync --config $cfg >/dev/null 2>&1 & echo ok | reply sync ;;
  check) /avalanche/check 2>&1 | reply check ;;
  stop) kill -TERM $agent; wait $agent; echo "exit $?" | reply stop ;;
  start) start_agent; echo ok | reply start ;;
  halt) sync; echo ok | reply halt; echo o >/proc/sysrq-trigger ;;
  *) echo "unknown command" | reply "$cmd" ;;
  esac
done
`

// guestCheck prints what the invariants are judged on, one key=value a
// line (base64 where it may hold anything).
const guestCheck = `#!/bin/bash
st=/var/lib/avalanche-agent
b64() { base64 -w0; }
run=$(readlink -f /run/current-system)
echo "running=$run"
echo "profile=$(readlink -f /nix/var/nix/profiles/system)"
echo "secret=$(cat /run/secrets/token 2>/dev/null | b64)"
if [ -n "$run" ] && out=$(nix-store --verify-path $(nix-store -qR "$run") 2>&1); then echo verify=ok
else echo "verify=$(printf '%s' "$out" | b64)"; fi
if out=$(git -C $st/repo.git fsck --no-dangling --no-progress 2>&1); then echo gitfsck=ok
else echo "gitfsck=$(printf '%s' "$out" | b64)"; fi
echo "state=$(b64 <$st/state.json)"
echo "journal=$(b64 <$st/journal)"
echo "queue=$(b64 <$st/forge-queue.json 2>/dev/null)"
echo "queueaside=$(ls $st/forge-queue.json.unreadable 2>/dev/null)"
echo "switchlog=$(b64 </var/log/avalanche-switch.log)"
echo "leftovers=$(ls -d /run/avalanche-agent/secrets.d/.tmp-* /run/secrets.tmp-* $st/.state.json.tmp-* $st/.forge-queue.json.tmp-* 2>/dev/null | tr '\n' ' ')"
`
