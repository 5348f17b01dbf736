#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, to try `hydra/launcher=slurm` (and for
# the tests marked `slurm`). Needs root (slurmd starts jobs as their user): run it with sudo.
#
#   scripts/slurm-local.sh start [--install]   start munged, slurmctld and slurmd; wait for idle
#   scripts/slurm-local.sh status              say whether it runs; exit 1 if not
#   scripts/slurm-local.sh env                 print `export SLURM_CONF=...` (eval it)
#   scripts/slurm-local.sh stop                stop what `start` started, remove the state folder
#
# Then, in the shell that submits:
#   eval "$(scripts/slurm-local.sh env)"
#   python -m selfcross.run -m seed=1,2 debug=fast logger=none hydra/launcher=slurm \
#       hydra.launcher.partition=debug hydra.launcher.gpus_per_node=0 \
#       hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=1
#
# Settings (environment variables):
#   SLURM_LOCAL_DIR        state folder: slurm.conf, munge key and socket, logs, spool, pid files
#                          (default /tmp/selfcross-slurm; `stop` deletes it)
#   SLURM_LOCAL_CPUS       CPUs the node offers (default: nproc; more than the machine has is
#                          allowed and oversubscribes it)
#   SLURM_LOCAL_MEM_MB     memory the node offers, MB (default: 90% of MemTotal)
#   SLURM_LOCAL_PARTITION  partition name (default debug)
#   SLURM_LOCAL_PORT       slurmctld's port; slurmd uses the next one (default 6817)
#   SLURM_LOCAL_INSTALL=1  same as --install: apt-get install slurmctld slurmd slurm-client munge
#                          when they are missing (Debian/Ubuntu, as root)
#   SLURM_LOCAL_TIMEOUT    seconds to wait for the node to become idle (default 60)
#
# Accounting is off (no slurmdbd, `sacct` fails): the case the selfcross launcher must cope with.
# Only this cluster's own processes are stopped (their pids are in the state folder); a
# system-wide munged or SLURM is left alone, and the ports must be free.
set -euo pipefail

STATE=${SLURM_LOCAL_DIR:-/tmp/selfcross-slurm}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
PORT=${SLURM_LOCAL_PORT:-6817}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
INSTALL=${SLURM_LOCAL_INSTALL:-0}
CONF=$STATE/slurm.conf
PACKAGES=(slurmctld slurmd slurm-client munge)
PROGRAMS=(munged mungekey slurmctld slurmd sinfo sbatch squeue scancel scontrol)

die() {
    echo "slurm-local: error: $*" >&2
    exit 1
}
say() { echo "slurm-local: $*" >&2; }

missing_programs() {
    local prog missing=()
    for prog in "${PROGRAMS[@]}"; do
        PATH=$PATH:/usr/sbin:/sbin command -v "$prog" >/dev/null || missing+=("$prog")
    done
    echo "${missing[*]}"
}

install_packages() {
    local missing
    missing=$(missing_programs)
    [[ -z $missing ]] && return 0
    if [[ $INSTALL != 1 ]]; then
        die "not installed: $missing; install the Debian packages (${PACKAGES[*]}) or rerun with --install"
    fi
    [[ $EUID -eq 0 ]] || die "installing packages needs root (sudo)"
    command -v apt-get >/dev/null || die "no apt-get: install SLURM and munge by hand ($missing)"
    say "installing ${PACKAGES[*]} (apt-get)"
    local log
    log=$(mktemp /tmp/slurm-local-apt.XXXXXX.log)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"; } >"$log" 2>&1; then
        die "apt-get install ${PACKAGES[*]} failed (see $log)"
    fi
    missing=$(missing_programs)
    [[ -z $missing ]] || die "still missing after apt-get install: $missing (see $log)"
    rm -f "$log"
}

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

running() {
    [[ -f $CONF ]] && pid_alive "$STATE/munged.pid" && pid_alive "$STATE/slurmctld.pid" &&
        pid_alive "$STATE/slurmd.pid"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

CPUS=${SLURM_LOCAL_CPUS:-$(nproc)}
MEM=${SLURM_LOCAL_MEM_MB:-$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)}
MARKER=$STATE/.slurm-local # tells `stop` that the folder is this script's to delete

check_settings() {
    [[ $CPUS =~ ^[1-9][0-9]*$ ]] || die "SLURM_LOCAL_CPUS=$CPUS: must be a positive integer"
    [[ $MEM =~ ^[1-9][0-9]*$ ]] || die "SLURM_LOCAL_MEM_MB=$MEM: must be a positive integer"
    [[ $PORT =~ ^[1-9][0-9]*$ ]] || die "SLURM_LOCAL_PORT=$PORT: must be a port number"
    [[ $PARTITION =~ ^[A-Za-z0-9_-]+$ ]] || die "SLURM_LOCAL_PARTITION=$PARTITION: not a name"
}

write_config() {
    local host
    host=$(hostname -s)
    cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh: a throwaway single-node cluster, state in $STATE.
ClusterName=selfcross-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups, no accounting: runs in containers and needs no slurmdbd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Fast turnaround for tests: schedule often, forget finished jobs after 2 s, kill after 5 s.
SchedulerParameters=bf_interval=1
MessageTimeout=10
MinJobAge=2
KillWait=5
InactiveLimit=0
ReturnToService=2
# The node is what this file says (CPUs may exceed the machine's to oversubscribe it).
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    local dir=$STATE/munge
    mkdir -p "$dir"
    chmod 755 "$dir" # the socket must be reachable by every user who submits
    [[ -f $dir/munge.key ]] || mungekey --create --keyfile="$dir/munge.key" >/dev/null
    chmod 600 "$dir/munge.key"
    # --force: the state folder may sit in a world-writable /tmp, which munged warns about
    munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
        --pid-file="$STATE/munged.pid" --log-file="$STATE/log/munged.log" \
        --seed-file="$dir/munged.seed" ||
        die "munged did not start (see $STATE/log/munged.log)"
    for _ in $(seq 50); do
        [[ -S $dir/munge.socket ]] && pid_alive "$STATE/munged.pid" && return 0
        sleep 0.1
    done
    die "munged did not start (see $STATE/log/munged.log)"
}

start() {
    [[ $EUID -eq 0 ]] || die "starting slurmd needs root: sudo $0 start"
    export PATH=$PATH:/usr/sbin:/sbin
    if running; then
        say "already running ($CONF)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    if [[ -d $STATE && ! -f $MARKER && -n $(ls -A "$STATE") ]]; then
        die "$STATE exists and is not a slurm-local state folder; set SLURM_LOCAL_DIR"
    fi
    check_settings
    install_packages
    port_free "$PORT" || die "port $PORT is in use (another slurmctld?); set SLURM_LOCAL_PORT"
    port_free $((PORT + 1)) || die "port $((PORT + 1)) is in use; set SLURM_LOCAL_PORT"
    mkdir -p "$STATE"
    touch "$MARKER"
    mkdir -p "$STATE/log" "$STATE/ctld" "$STATE/spool"
    chmod 755 "$STATE"
    write_config
    start_munge
    export SLURM_CONF=$CONF
    # -c: start clean, forgetting jobs of an earlier cluster in this folder
    slurmctld -c -f "$CONF" || die "slurmctld did not start (see $STATE/log/slurmctld.log)"
    slurmd -f "$CONF" || die "slurmd did not start (see $STATE/log/slurmd.log)"
    local waited=0 state=""
    while ((waited < TIMEOUT * 2)); do
        state=$(sinfo -h -p "$PARTITION" -o %T 2>/dev/null || true)
        [[ $state == idle ]] && break
        sleep 0.5
        waited=$((waited + 1))
    done
    if [[ $state != idle ]]; then
        say "the node is not idle after ${TIMEOUT}s (state: ${state:-unknown}); logs:"
        tail -n 5 "$STATE"/log/slurm*.log >&2 || true
        stop_daemons
        exit 1
    fi
    say "up: partition $PARTITION, $(sinfo -h -o '%c CPUs, %m MB') ($(sinfo --version))"
    echo "export SLURM_CONF=$CONF"
}

stop_one() { # name: TERM the recorded pid, wait, then KILL
    local pidfile=$STATE/$1.pid pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop_daemons() {
    # slurmd first: it ends its jobs' slurmstepd; then the controller, then munge.
    if [[ -f $CONF ]] && pid_alive "$STATE/slurmctld.pid" && pid_alive "$STATE/slurmd.pid"; then
        # end the jobs while slurmd can still clean up after them
        SLURM_CONF=$CONF scancel --quiet --partition="$PARTITION" 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z $(SLURM_CONF=$CONF squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    stop_one slurmd
    stop_one slurmctld
    stop_one munged
}

stop() {
    [[ -d $STATE ]] || {
        say "nothing to stop ($STATE does not exist)"
        return 0
    }
    [[ -f $MARKER ]] || die "$STATE is not a slurm-local state folder; nothing stopped"
    stop_daemons
    rm -rf "$STATE"
    say "stopped; removed $STATE"
}

status() {
    if running; then
        echo "running: SLURM_CONF=$CONF"
        SLURM_CONF=$CONF sinfo
        SLURM_CONF=$CONF squeue
    else
        echo "not running ($STATE)"
        return 1
    fi
}

cmd=${1:-}
shift || true
for arg in "$@"; do
    case $arg in
    --install) INSTALL=1 ;;
    *) die "unknown option $arg (usage: $0 start [--install] | stop | status | env)" ;;
    esac
done
case $cmd in
start) start ;;
stop) stop ;;
status) status ;;
env) echo "export SLURM_CONF=$CONF" ;;
*) die "usage: $0 start [--install] | stop | status | env" ;;
esac
