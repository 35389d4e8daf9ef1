# Kernel modules every k3s node loads for marmithon's tailscale sidecar: it
# runs iptables-legacy without CAP_SYS_MODULE, so the legacy tables and
# matches it and tailscaled use must already be loaded, or the egress lock
# fails (closed: the pod never starts); tun for tailscale0. Shared by
# role-k3s-agent.nix and role-k3s-server.nix.
[
  "tun"
  "ip_tables"
  "ip6_tables"
  "iptable_filter"
  "ip6table_filter"
  "iptable_nat"
  "ip6table_nat"
  "iptable_mangle"
  "ip6table_mangle"
  "xt_owner"
  "xt_mark"
  "xt_conntrack"
  "xt_connmark"
  "ipt_REJECT"
  "ip6t_REJECT"
]
