#!/usr/bin/env bash
# A multi-node SLURM on the test cluster of .ci/hosts.sh, from Debian's packages.
#
#   bash .ci/slurm.sh start    install slurm-wlm + munge if missing, bring the hosts up,
#                              write the config, start munged, slurmctld on gpu1 and one
#                              slurmd per host (idempotent)
#   bash .ci/slurm.sh stop     stop the daemons this script started (by PID; idempotent)
#   bash .ci/slurm.sh status   sinfo when every daemon is alive; otherwise say what is down
#   bash .ci/slurm.sh env      print `export SLURM_CONF=...` for the client commands
#
# Nodes: gpu1 (198.18.0.1, partition gpu, feature gpu, GRES gpu:1 without a device file),
# cpu1 and cpu2 (partition cpu, the default); partition `all` holds all three for
# homogeneous multi-node jobs. Each node declares 4 CPUs, so two small jobs share one.
#
# Nothing outside $RUN_DIR is written: the config is $RUN_DIR/etc/slurm.conf, read through
# SLURM_CONF (the system's /etc/slurm is left alone), and munged is this script's own
# instance, with its own key, socket and lock under $RUN_DIR/munge, so a munged that is
# already running on the machine neither blocks it ("Failed to lock") nor is touched.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
RUN_DIR=/run/rlfarm-slurm
CONF_DIR=$RUN_DIR/etc
export SLURM_CONF=$CONF_DIR/slurm.conf
MUNGE_DIR=$RUN_DIR/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket.2
HOSTS=(gpu1 cpu1 cpu2)
NODE_CPUS=4

log() { echo "slurm.sh: $*" >&2; }

running() {  # running PIDFILE -> true when the process in PIDFILE is alive
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [[ $(id -u) -eq 0 ]] || { log "must run as root to install slurm-wlm and munge"; exit 1; }
    log "installing slurm-wlm and munge from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
}

write_conf() {  # returns 0 when the config changed
    mkdir -p "$CONF_DIR" "$RUN_DIR/log" "$RUN_DIR/state" "$RUN_DIR/spool"
    cat >"$CONF_DIR/slurm.conf.new" <<EOF
# Written by .ci/slurm.sh: the test cluster of .ci/hosts.sh, no accounting daemon.
ClusterName=rlfarm-ci
SlurmctldHost=gpu1(198.18.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
GresTypes=gpu
# Finished jobs stay visible to \`scontrol show job\` for 30 minutes (no slurmdbd here).
MinJobAge=1800
JobCompType=jobcomp/filetxt
JobCompLoc=$RUN_DIR/log/jobcomp.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
# A lost node is noticed within about SlurmdTimeout; requeue keeps jobs that ask for it.
SlurmdTimeout=30
JobRequeue=1
KillWait=10
SchedulerParameters=sched_interval=2
SlurmdParameters=config_overrides
StateSaveLocation=$RUN_DIR/state
SlurmdSpoolDir=$RUN_DIR/spool/%n
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd-%n.pid
SlurmctldLogFile=$RUN_DIR/log/slurmctld.log
SlurmdLogFile=$RUN_DIR/log/slurmd-%n.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=gpu1 NodeAddr=198.18.0.1 CPUs=$NODE_CPUS RealMemory=4096 Feature=gpu Gres=gpu:1 State=UNKNOWN
NodeName=cpu1 NodeAddr=198.18.0.2 CPUs=$NODE_CPUS RealMemory=4096 Feature=cpu State=UNKNOWN
NodeName=cpu2 NodeAddr=198.18.0.3 CPUs=$NODE_CPUS RealMemory=4096 Feature=cpu State=UNKNOWN
PartitionName=cpu Nodes=cpu1,cpu2 Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=gpu1 MaxTime=INFINITE State=UP
PartitionName=all Nodes=gpu1,cpu1,cpu2 MaxTime=INFINITE State=UP
EOF
    printf "AutoDetect=off\nNodeName=gpu1 Name=gpu File=/dev/null Count=1\n" >"$CONF_DIR/gres.conf.new"
    local changed=1
    if cmp -s "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf" \
            && cmp -s "$CONF_DIR/gres.conf.new" "$CONF_DIR/gres.conf"; then
        changed=0
    fi
    mv "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
    mv "$CONF_DIR/gres.conf.new" "$CONF_DIR/gres.conf"
    return $(( 1 - changed ))
}

start_munge() {
    running "$MUNGE_DIR/munged.pid" && munge_works && return
    stop_pidfile "$MUNGE_DIR/munged.pid"
    mkdir -p "$MUNGE_DIR"
    chmod 0700 "$MUNGE_DIR"
    if [[ ! -s $MUNGE_DIR/munge.key ]]; then
        dd if=/dev/urandom bs=1 count=1024 of="$MUNGE_DIR/munge.key" 2>/dev/null
        chmod 0400 "$MUNGE_DIR/munge.key"
    fi
    /usr/sbin/munged --force --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" --seed-file="$MUNGE_DIR/munged.seed" \
        --log-file="$MUNGE_DIR/munged.log"
    for _ in $(seq 50); do munge_works && return; sleep 0.1; done
    log "munged does not answer on $MUNGE_SOCKET; see $MUNGE_DIR/munged.log"
    exit 1
}

munge_works() { munge -S "$MUNGE_SOCKET" -n 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }

in_host() { bash "$HERE/hosts.sh" exec "$@"; }

wait_nodes_idle() {
    local states
    for _ in $(seq 90); do
        states=$(sinfo -h -N -o '%N %T' 2>/dev/null | sort -u || true)
        if [[ -n $states ]] && ! grep -qvE ' (idle|mixed|allocated)$' <<<"$states"; then
            return 0
        fi
        for node in $(awk '$2 ~ /^(down|drain)/ {print $1}' <<<"$states"); do
            scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
        done
        sleep 0.5
    done
    log "not every node came up: $(tr '\n' ' ' <<<"$states"); see $RUN_DIR/log/"
    return 1
}

start() {
    install_packages
    bash "$HERE/hosts.sh" up >/dev/null
    if write_conf && daemons_alive_any; then
        log "the config changed: restarting the SLURM daemons"
        stop_slurm_daemons
    fi
    start_munge
    running "$RUN_DIR/slurmctld.pid" || in_host gpu1 /usr/sbin/slurmctld
    for host in "${HOSTS[@]}"; do
        running "$RUN_DIR/slurmd-$host.pid" || in_host "$host" /usr/sbin/slurmd
    done
    wait_nodes_idle
    sinfo
    echo "export SLURM_CONF=$SLURM_CONF"
}

daemons_alive_any() {
    running "$RUN_DIR/slurmctld.pid" && return 0
    for host in "${HOSTS[@]}"; do running "$RUN_DIR/slurmd-$host.pid" && return 0; done
    return 1
}

stop_pidfile() {
    local pidfile=$1 pid
    running "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop_slurm_daemons() {
    for host in "${HOSTS[@]}"; do stop_pidfile "$RUN_DIR/slurmd-$host.pid"; done
    stop_pidfile "$RUN_DIR/slurmctld.pid"
}

stop() {
    stop_slurm_daemons
    stop_pidfile "$MUNGE_DIR/munged.pid"
    log "stopped"
}

status() {  # the truth: every daemon's process, then what the controller says
    local down=()
    running "$MUNGE_DIR/munged.pid" && munge_works || down+=(munged)
    running "$RUN_DIR/slurmctld.pid" || down+=("slurmctld(gpu1)")
    for host in "${HOSTS[@]}"; do running "$RUN_DIR/slurmd-$host.pid" || down+=("slurmd($host)"); done
    if (( ${#down[@]} )); then
        echo "SLURM is down or partly down: not running: ${down[*]}"
        return 1
    fi
    sinfo -N -o '%N %P %T %f %G'
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
