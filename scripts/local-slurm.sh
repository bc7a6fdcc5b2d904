#!/usr/bin/env bash
# A real single-node Slurm cluster with accounting, on this machine, for tests and for trying `llada-play submit`.
#
#   scripts/local-slurm.sh start [DIR]    # munge, MariaDB, slurmdbd, slurmctld, slurmd; prints `export SLURM_CONF=...`
#   scripts/local-slurm.sh stop  [DIR]    # stops the daemons it started, by the PIDs in DIR/run/
#   scripts/local-slurm.sh install        # apt-get the Debian packages (idempotent)
#
# Everything (keys, configuration, state, spool, logs, database) lives in DIR (default /tmp/llada-slurm); the
# daemons listen on non-default ports (base LOCAL_SLURM_PORT, default 16810) and run as root, so nothing in
# /etc is touched and the system's own services, if any, are left alone. Debian 12: slurm 22.05, munge 0.5,
# MariaDB 10.11.
set -euo pipefail

ACTION=${1:-}
DIR=$(realpath -m "${2:-${LOCAL_SLURM_DIR:-/tmp/llada-slurm}}")
BASE=${LOCAL_SLURM_PORT:-16810}
CTLD_PORT=$BASE; SLURMD_PORT=$((BASE + 1)); DBD_PORT=$((BASE + 2)); DB_PORT=$((BASE + 3))
CLUSTER=llada
PACKAGES="slurm-wlm slurmdbd munge mariadb-server"

log() { echo "local-slurm: $*" >&2; }

install() {
    if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v munged >/dev/null \
            && command -v mariadbd >/dev/null; then
        return 0
    fi
    apt-get update -q >/dev/null
    # policy-rc.d keeps the packages' own services from starting on install
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PACKAGES >/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2 deadline; shift 2
    deadline=$((SECONDS + limit))
    while [ $SECONDS -lt $deadline ]; do
        if timeout 5 "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    log "$what did not come up within ${limit}s; its log:"; tail -20 "$DIR/log/$what.log" >&2 || true
    return 1
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    for tool in slurmctld slurmd slurmdbd munged mariadbd; do
        command -v $tool >/dev/null || { log "$tool is not installed (run: $0 install)"; exit 3; }
    done
    if pid_alive "$DIR/run/slurmctld.pid"; then
        log "already running in $DIR"; echo "export SLURM_CONF=$DIR/etc/slurm.conf"; return 0
    fi
    mkdir -p "$DIR"/{etc,run,log,state,spool,db}
    chmod 700 "$DIR"

    # munge: a fresh key and its own socket; Slurm's AuthInfo points at that socket
    [ -f "$DIR/etc/munge.key" ] || { head -c 1024 /dev/urandom >"$DIR/etc/munge.key"; chmod 400 "$DIR/etc/munge.key"; }
    munged --force --key-file="$DIR/etc/munge.key" --socket="$DIR/run/munge.socket" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/state/munge.seed"
    wait_for 10 munged test -S "$DIR/run/munge.socket"

    # MariaDB for the accounting database, on 127.0.0.1 only
    if [ ! -d "$DIR/db/mysql" ]; then
        mariadb-install-db --no-defaults --datadir="$DIR/db" --user=root --auth-root-authentication-method=normal \
            --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1
    fi
    (mariadbd --no-defaults --datadir="$DIR/db" --user=root --bind-address=127.0.0.1 --port=$DB_PORT \
        --socket="$DIR/run/mysqld.sock" --pid-file="$DIR/run/mariadbd.pid" --log-error="$DIR/log/mariadbd.log" \
        --innodb-buffer-pool-size=32M --innodb-log-file-size=8M >/dev/null 2>&1 &)
    wait_for 30 mariadbd mariadb --no-defaults --socket="$DIR/run/mysqld.sock" -uroot -e "select 1"
    mariadb --no-defaults --socket="$DIR/run/mysqld.sock" -uroot -e \
        "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

    cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$DIR/run/munge.socket
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
DebugLevel=info
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf"

    local cpus mem
    cpus=$(getconf _NPROCESSORS_ONLN)  # not nproc: it follows OMP_NUM_THREADS
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
    cat >"$DIR/etc/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/run/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobRequeue=1
SchedulerParameters=sched_interval=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# the client side of the slurmdbd connection takes its munge socket from here, not from AuthInfo
AccountingStoragePass=$DIR/run/munge.socket
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
KillWait=5
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$DIR/etc/slurm.conf"

    slurmdbd
    wait_for 20 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster $CLUSTER >/dev/null 2>&1 || true
    slurmctld
    wait_for 20 slurmctld scontrol ping
    slurmd -N localhost
    wait_for 20 slurmd bash -c "sinfo -h -o %t | grep -qx idle"
    log "up in $DIR (sinfo: $(sinfo -h -o '%P %t %D'))"
    echo "export SLURM_CONF=$DIR/etc/slurm.conf"
}

stop_pid() {  # stop_pid NAME: TERM, then KILL after 10 s
    local file="$DIR/run/$1.pid" pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop() {
    for name in slurmd slurmctld slurmdbd mariadbd munged; do stop_pid $name; done
    log "stopped the daemons in $DIR"
}

case "$ACTION" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 install | start [DIR] | stop [DIR]" >&2; exit 2 ;;
esac
