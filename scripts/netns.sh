#!/usr/bin/env bash
# Hosts for the toy store on one machine: one network namespace per service, all joined by a bridge
# that lives in a namespace of its own, so nothing outside the namespaces this script makes is touched.
#
#   scripts/netns.sh run [--] COMMAND...  make the hosts, run COMMAND on the client host with
#                                        TOYSTORE_HOSTS naming the others, remove the hosts when it ends
#                                        (also on failure or Ctrl-C); exits with COMMAND's status
#   scripts/netns.sh up | down | status  make, remove (killing what runs in them) or list the hosts
#
# Hosts (address NET.N/24):  client .10   frontend .2   catalog .3   order1 .4   order2 .5   order3 .6
#                            wan .9 (the relay that adds the client's delay runs here)
# Environment: NETNS_PREFIX (namespace names, default tsx-), NETNS_NET (first three bytes, default
# 10.77.0). Needs root (ip netns, veth, bridge).
#
# `make experiment NETNS=1 DELAY_MS=20` runs the experiment this way: its driver and clients on the
# client host, each service on its own host bound to that host's address, the clients' traffic to the
# front-end through the relay on the wan host, which holds every chunk DELAY_MS ms each way.
set -euo pipefail

PREFIX=${NETNS_PREFIX:-tsx-}
NET=${NETNS_NET:-10.77.0}
SWITCH="${PREFIX}switch"
HOSTS=(client:10 frontend:2 catalog:3 order1:4 order2:5 order3:6 wan:9)

die() { echo "netns.sh: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, veth pairs and a bridge)"
  command -v ip >/dev/null || die "needs ip from iproute2"
}

exists() { [ -e "/run/netns/$1" ]; }

up() {
  need_root
  exists "$SWITCH" && die "hosts with prefix $PREFIX exist already; run: $0 down"
  ip netns add "$SWITCH"
  ip -n "$SWITCH" link set lo up
  ip -n "$SWITCH" link add br0 type bridge
  ip -n "$SWITCH" link set br0 up
  for entry in "${HOSTS[@]}"; do
    local host=${entry%%:*} last=${entry##*:}
    local ns="${PREFIX}${host}" port="${PREFIX}${host}"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # The pair is made here, then each end moved: one into the host as eth0, one onto the bridge.
    ip link add "$port" type veth peer name "${port}-h"
    ip link set "${port}-h" netns "$ns"
    ip -n "$ns" link set "${port}-h" name eth0
    ip -n "$ns" addr add "${NET}.${last}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip link set "$port" netns "$SWITCH"
    ip -n "$SWITCH" link set "$port" master br0
    ip -n "$SWITCH" link set "$port" up
  done
  echo "netns.sh: hosts up on ${NET}.0/24: $(hosts_list)" >&2
}

down() {
  for entry in "${HOSTS[@]}" switch:0; do
    local ns="${PREFIX}${entry%%:*}"
    exists "$ns" || continue
    # Only processes started in these namespaces, each by its id.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
}

# TOYSTORE_HOSTS for the experiment: SERVICE=NETNS@IP,...
hosts_list() {
  local list="" entry host last
  for entry in "${HOSTS[@]}"; do
    host=${entry%%:*} last=${entry##*:}
    case $host in
      client) continue ;;
      wan) list+="relay=${PREFIX}wan@${NET}.${last}," ;;
      *) list+="${host}=${PREFIX}${host}@${NET}.${last}," ;;
    esac
  done
  echo "${list%,}"
}

status() {
  for entry in "${HOSTS[@]}" switch:0; do
    local ns="${PREFIX}${entry%%:*}"
    if exists "$ns"; then
      echo "$ns: $(ip -n "$ns" -brief addr show dev eth0 2>/dev/null | awk '{print $3}') pids: $(ip netns pids "$ns" | tr '\n' ' ')"
    fi
  done
}

run() {
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "run needs a command"
  need_root
  exists "$SWITCH" && die "hosts with prefix $PREFIX exist already (another run?); run: $0 down"
  trap 'trap - EXIT INT TERM; down; echo "netns.sh: hosts removed" >&2' EXIT
  up
  TOYSTORE_HOSTS=$(hosts_list)
  export TOYSTORE_HOSTS
  # In the background so that a signal to this script is handled at once: passed on as SIGTERM
  # (the experiment then stops every process it started), then the hosts are removed.
  ip netns exec "${PREFIX}client" "$@" &
  local child=$! rc=0
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 130' INT TERM
  wait "$child" || rc=$?
  exit "$rc"
}

case "${1:-}" in
  up) up ;;
  down) need_root; down ;;
  status) status ;;
  hosts) hosts_list ;;
  run) shift; run "$@" ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
