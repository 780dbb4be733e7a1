#!/usr/bin/env bash
# A test cluster of three "hosts" on one machine: network namespaces, each with its own
# UTS namespace (hostname), joined by a Linux bridge. Read docs/cluster-testing.md.
#
#   bash .ci/hosts.sh up                 create gpu1 (198.18.0.1), cpu1 (.2), cpu2 (.3) (idempotent)
#   bash .ci/hosts.sh down               end every process in the hosts (by PID), remove all made
#   bash .ci/hosts.sh status             print the hosts, their addresses and process counts
#   bash .ci/hosts.sh exec HOST CMD...   run CMD inside HOST (its network and hostname)
#   bash .ci/hosts.sh shape DELAY RATE   netem on every host link, e.g. `shape 5ms 1gbit`;
#                                        `shape off` removes it
#   bash .ci/hosts.sh pids HOST          PIDs of the processes inside HOST
#
# Addresses come from 198.18.0.0/24 (RFC 2544, benchmarking) only. The machine itself gets
# 198.18.0.254 on the bridge so tests can reach the hosts; nothing routes out of the bridge
# (no forwarding, no NAT, no default route inside a host). Everything this script makes is
# named rf-* / listed in $STATE, and `down` removes exactly that.
set -euo pipefail

HOSTS=(gpu1 cpu1 cpu2)
declare -A ADDR=([gpu1]=198.18.0.1 [cpu1]=198.18.0.2 [cpu2]=198.18.0.3)
BRIDGE=rf-br0
BRIDGE_ADDR=198.18.0.254
STATE=/run/rlfarm-hosts   # UTS namespace files (bind mounts) live here

# Reachable = a TCP connect to a closed port is refused (an RST came back) within 2 s.
REACH='import socket, sys
s = socket.socket(); s.settimeout(2)
try: s.connect((sys.argv[1], 9))
except ConnectionRefusedError: sys.exit(0)
except OSError as err: sys.exit(f"{sys.argv[1]}: {err}")'

log() { echo "hosts.sh: $*" >&2; }
need_root() { [[ $(id -u) -eq 0 ]] || { log "must run as root"; exit 1; }; }
known() { [[ -n ${ADDR[$1]:-} ]] || { log "unknown host '$1' (hosts: ${HOSTS[*]})"; exit 2; }; }
netns_exists() { [[ -e /run/netns/$1 ]]; }
uts_exists() { mountpoint -q "$STATE/$1.uts" 2>/dev/null; }

# A private mount for the UTS namespace files, as `ip netns` does for /run/netns: a
# namespace file can only be bind-mounted onto a file in a non-shared mount.
state_mount() {
    mkdir -p "$STATE"
    if ! mountpoint -q "$STATE"; then
        mount --bind "$STATE" "$STATE"
    fi
    mount --make-private "$STATE"
}

host_up() {
    local host=$1 addr=${ADDR[$1]} veth_host="rf-$1" veth_peer="rf-$1-p"
    netns_exists "$host" || ip netns add "$host"
    if ! uts_exists "$host"; then
        touch "$STATE/$host.uts"
        unshare --uts="$STATE/$host.uts" hostname "$host"
    fi
    ip netns exec "$host" ip link set lo up
    if ! ip link show "$veth_host" >/dev/null 2>&1; then
        ip link add "$veth_host" type veth peer name "$veth_peer"
        ip link set "$veth_peer" netns "$host"
        ip netns exec "$host" ip link set "$veth_peer" name eth0
    fi
    ip link set "$veth_host" master "$BRIDGE" up
    ip netns exec "$host" ip addr replace "$addr/24" dev eth0
    ip netns exec "$host" ip link set eth0 up
}

up() {
    need_root
    state_mount
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    ip addr replace "$BRIDGE_ADDR/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for host in "${HOSTS[@]}"; do host_up "$host"; done
    for host in "${HOSTS[@]}"; do  # every host reaches every other one
        for peer in "${HOSTS[@]}"; do
            in_host "$host" python3 -c "$REACH" "${ADDR[$peer]}" \
                || { log "$host cannot reach $peer (${ADDR[$peer]})"; exit 1; }
        done
    done
    status
}

# in_host HOST CMD...: CMD in HOST's network and UTS namespaces (same filesystem and PIDs).
in_host() {
    local host=$1; shift
    exec_prefix "$host"
    "${PREFIX[@]}" "$@"
}

exec_prefix() {
    PREFIX=(nsenter --net="/run/netns/$1" --uts="$STATE/$1.uts" --)
}

host_pids() {  # PIDs in HOST's network namespace (ip netns pids finds them by namespace inode)
    netns_exists "$1" && ip netns pids "$1" 2>/dev/null || true
}

kill_host_processes() {
    local host=$1 pids
    pids=$(host_pids "$host")
    [[ -z $pids ]] && return 0
    kill $pids 2>/dev/null || true
    for _ in $(seq 50); do [[ -z $(host_pids "$host") ]] && return 0; sleep 0.1; done
    pids=$(host_pids "$host")
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
    for _ in $(seq 50); do [[ -z $(host_pids "$host") ]] && return 0; sleep 0.1; done
    log "processes still in $host: $(host_pids "$host" | tr '\n' ' ')"
}

down() {
    need_root
    for host in "${HOSTS[@]}"; do
        kill_host_processes "$host"
        ip link del "rf-$host" 2>/dev/null || true
        netns_exists "$host" && ip netns del "$host"
        if uts_exists "$host"; then umount "$STATE/$host.uts"; fi
        rm -f "$STATE/$host.uts"
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    if mountpoint -q "$STATE"; then umount "$STATE"; fi
    rmdir "$STATE" 2>/dev/null || true
    log "down"
}

status() {
    local any=0
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        echo "bridge $BRIDGE $BRIDGE_ADDR/24: $(cat /sys/class/net/$BRIDGE/operstate)"
        any=1
    fi
    for host in "${HOSTS[@]}"; do
        if netns_exists "$host" && uts_exists "$host"; then
            local name link procs
            name=$(in_host "$host" hostname)
            link=$(ip netns exec "$host" cat /sys/class/net/eth0/operstate 2>/dev/null || echo missing)
            procs=$(host_pids "$host" | wc -l)
            echo "$host ${ADDR[$host]} hostname=$name eth0=$link processes=$procs"
            any=1
        else
            echo "$host ${ADDR[$host]} down"
        fi
    done
    (( any )) || { echo "test cluster is down"; return 1; }
}

shape() {
    need_root
    local delay=${1:?usage: shape DELAY RATE | shape off} rate=${2:-}
    for host in "${HOSTS[@]}"; do
        # netem on both ends: host -> bridge and bridge -> host each carry half the delay
        # would be the textbook split; we put DELAY on each host's eth0 (egress), so one
        # host-to-host round trip costs 2 x DELAY, as between two real machines.
        ip netns exec "$host" tc qdisc del dev eth0 root 2>/dev/null || true
        if [[ $delay != off ]]; then
            ip netns exec "$host" tc qdisc add dev eth0 root netem delay "$delay" \
                ${rate:+rate "$rate"} limit 100000
        fi
    done
    log "links: ${delay}${rate:+ / $rate}"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    exec) shift; known "${1:-}"; host=$1; shift; exec_prefix "$host"; exec "${PREFIX[@]}" "$@" ;;
    pids) known "${2:-}"; host_pids "$2" ;;
    shape) shift; shape "$@" ;;
    *) echo "usage: $0 up|down|status|exec HOST CMD...|pids HOST|shape DELAY RATE|shape off" >&2; exit 2 ;;
esac
