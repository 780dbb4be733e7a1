#!/usr/bin/env bash
# A one-node SLURM for the SLURM end-to-end tests, from Debian's packages.
#
#   bash .ci/slurm.sh start    install slurm-wlm + munge if missing, write slurm.conf,
#                              start munged, slurmctld and slurmd (idempotent)
#   bash .ci/slurm.sh stop     stop the three daemons (idempotent)
#   bash .ci/slurm.sh status   print sinfo, or say that SLURM is down
#
# Runs as root on a fresh Debian machine. The node is named by `hostname` and declares
# at least 2 CPUs, so two one-CPU jobs share it (the port-clash test needs that).
set -euo pipefail

CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
RUN_DIR=/run/rlfarm-slurm
PIDS=("$RUN_DIR/slurmd.pid" "$RUN_DIR/slurmctld.pid" "$RUN_DIR/munged.pid")

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

write_conf() {
    local host cpus mem_mb
    host=$(hostname)
    cpus=$(nproc)
    (( cpus < 2 )) && cpus=2
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" /var/spool/slurmctld /var/spool/slurmd
    cat >"$RUN_DIR/slurm.conf.new" <<EOF
# Written by .ci/slurm.sh: one node, no accounting daemon.
ClusterName=rlfarm-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Finished jobs stay visible to \`scontrol show job\` for 30 minutes (no slurmdbd here).
MinJobAge=1800
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SchedulerParameters=sched_interval=2
SlurmdParameters=config_overrides
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    if ! cmp -s "$RUN_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"; then
        mv "$RUN_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
        return 0   # changed
    fi
    rm -f "$RUN_DIR/slurm.conf.new"
    return 1
}

start_munge() {
    running "$RUN_DIR/munged.pid" && return
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then mungekey --create --force; else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$RUN_DIR/munged.pid"
    munge -n | unmunge >/dev/null || { log "munge does not work"; exit 1; }
}

wait_node_idle() {
    local host state
    host=$(hostname)
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
        case "$state" in
            idle*|mixed*|allocated*) return 0 ;;
            down*|drain*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    log "node $host did not come up (state: ${state:-unknown}); see $LOG_DIR/slurmd.log"
    return 1
}

start() {
    install_packages
    local changed=0
    write_conf && changed=1
    if (( changed )) && { running "$RUN_DIR/slurmctld.pid" || running "$RUN_DIR/slurmd.pid"; }; then
        log "slurm.conf changed: restarting the daemons"
        stop_slurm_daemons
    fi
    start_munge
    running "$RUN_DIR/slurmctld.pid" || /usr/sbin/slurmctld
    running "$RUN_DIR/slurmd.pid" || /usr/sbin/slurmd
    wait_node_idle
    sinfo
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
    stop_pidfile "$RUN_DIR/slurmd.pid"
    stop_pidfile "$RUN_DIR/slurmctld.pid"
}

stop() {
    stop_slurm_daemons
    stop_pidfile "$RUN_DIR/munged.pid"
    log "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if running "${PIDS[1]}" && running "${PIDS[0]}"; then sinfo; else echo "SLURM is down"; exit 1; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
