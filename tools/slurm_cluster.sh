#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, with accounting, for trying `hydra/launcher=slurm` and
# for tests/launch/test_slurm.py (which starts it through this script). Root, Debian/Ubuntu; no systemd
# needed: the daemons are started by hand.
#
#   tools/slurm_cluster.sh start    install what is missing, configure, start, wait until the node is idle
#   tools/slurm_cluster.sh status   the daemons, the partition and the node (exit 1 when not all up)
#   tools/slurm_cluster.sh stop     stop the daemons this script started (config and state kept)
#   tools/slurm_cluster.sh purge    stop, then delete the config, job state and accounting database
#
# `start` is idempotent: daemons already up are left alone (restarted when the config changed).
# The node is this machine (`hostname -s`, CPUs and memory as `slurmd -C` finds them) in partition
# debug (MaxTime below); everything talks over 127.0.0.1, so no name lookups. Why each setting:
#   proctrack/linuxproc, task/none, jobacct_gather/none: no cgroups (containers, no systemd);
#   select/cons_tres + CR_Core_Memory: CPUs and memory are both allocated, so jobs share the node;
#   DefMemPerCPU: a job without --mem takes its share, not the whole node;
#   EnforcePartLimits=ALL: a job asking more than the partition has is refused, not queued forever;
#   AuthInfo=cred_expire=30 and sched/bf_interval=5: a requeued job runs again after ~35 s, not ~3 min;
#   slurmdbd + MariaDB: `sacct` works, so submitit sees job states (a cancelled job is noticed).
# Environment: SLURM_PARTITION_MAXTIME (minutes, default 60), SLURM_START_TIMEOUT (s, default 60),
# SLURM_NODE_CPUS (default: the machine's): more CPUs than the machine has lets more jobs run at once
# (SlurmdParameters=config_overrides), for jobs that mostly wait, as the tests' requeued ones do.
set -euo pipefail

ETC=/etc/slurm
CONF=$ETC/slurm.conf
DBD_CONF=$ETC/slurmdbd.conf
STATE=/var/lib/ftlab-slurm          # our own state: spool dirs, logs; purge deletes it
RUN=/run/ftlab-slurm                # pid files
PARTITION=debug
CLUSTER=ftlab
MAXTIME=${SLURM_PARTITION_MAXTIME:-60}
START_TIMEOUT=${SLURM_START_TIMEOUT:-60}
NODE_CPUS=${SLURM_NODE_CPUS:-}
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd slurm-wlm-mysql-plugin mariadb-server)
DB_PASS=ftlab-slurm                 # local only: MariaDB listens on its socket, slurmdbd on 127.0.0.1

say() { echo "slurm_cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts daemons); fix: sudo $0 ${1:-start}"
}

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  # no daemon may start from a package's postinst (there is no init to start it): we start them below
  local blocker=0 ok=0
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; blocker=1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1 && ok=1
  if [ $ok = 0 ]; then  # a fresh image may have no package lists yet
    apt-get update -q >>"$STATE/apt.log" 2>&1 || true
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1 && ok=1
  fi
  [ $blocker = 0 ] || rm -f /usr/sbin/policy-rc.d
  [ $ok = 1 ] || die "apt-get install ${missing[*]} failed (log: $STATE/apt.log)"
}

write_config() {
  local host node_line tmp cpus mem
  host=$(hostname -s)
  # slurmd -C: "NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=.."
  node_line=$(slurmd -C | head -1 | sed -E "s/^NodeName=[^ ]+ //; s/ *UpTime=.*//")
  [ -n "$node_line" ] || die "slurmd -C printed no node description"
  cpus=$(sed -nE 's/(^|.* )CPUs=([0-9]+).*/\2/p' <<<"$node_line")
  mem=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$node_line")
  local overrides=""
  if [ -n "$NODE_CPUS" ] && [ "$NODE_CPUS" != "$cpus" ]; then
    [[ "$NODE_CPUS" =~ ^[1-9][0-9]*$ ]] || die "SLURM_NODE_CPUS=$NODE_CPUS: expected a number of CPUs"
    cpus=$NODE_CPUS node_line="CPUs=$cpus RealMemory=$mem" overrides="SlurmdParameters=config_overrides"
  fi
  mkdir -p "$ETC" "$STATE"/{ctld,d,log} "$RUN"
  chown slurm:slurm "$STATE"/ctld "$STATE"/log "$RUN"
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# written by tools/slurm_cluster.sh (ftlab): a one-node cluster on $host
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=cred_expire=30
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
EnforcePartLimits=ALL
SchedulerParameters=sched_interval=5,bf_interval=5
ReturnToService=2
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
DefMemPerCPU=$((mem / cpus))
$overrides
NodeName=$host NodeAddr=127.0.0.1 $node_line State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=$MAXTIME State=UP
EOF
  CHANGED=0
  cmp -s "$tmp" "$CONF" || { install -m 644 "$tmp" "$CONF"; CHANGED=1; }
  cat >"$tmp" <<EOF
# written by tools/slurm_cluster.sh (ftlab)
AuthType=auth/munge
DbdHost=$host
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$RUN/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
EOF
  cmp -s "$tmp" "$DBD_CONF" || { install -m 600 -o slurm -g slurm "$tmp" "$DBD_CONF"; CHANGED=1; }
  rm -f "$tmp"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for <what> <command...>: until the command succeeds, or fail after START_TIMEOUT
  local what=$1 t=0; shift
  until "$@" >/dev/null 2>&1; do
    t=$((t + 1)); [ $t -le $((START_TIMEOUT * 5)) ] || die "$what did not come up in ${START_TIMEOUT}s (logs: $STATE/log/)"
    sleep 0.2
  done
}

start_munge() {
  alive /run/munge/munged.pid && return
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  [ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; chown munge:munge /etc/munge/munge.key; }
  runuser -u munge -- /usr/sbin/munged
  wait_for munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
  mysqladmin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1 && return
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/log/mariadb-install.log" 2>&1
  (setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
     --pid-file=/run/mysqld/ftlab.pid --skip-networking --log-error=/var/lib/mysql/ftlab-error.log </dev/null >/dev/null 2>&1 &)
  wait_for mariadb mysqladmin --socket=/run/mysqld/mysqld.sock ping
  mariadb --socket=/run/mysqld/mysqld.sock <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start_slurm() {
  if [ "$CHANGED" = 1 ]; then stop_slurm; fi
  alive "$RUN/slurmdbd.pid" || { /usr/sbin/slurmdbd; wait_for slurmdbd sacctmgr -n list cluster; }
  alive "$RUN/slurmctld.pid" || { /usr/sbin/slurmctld; wait_for slurmctld scontrol ping; }
  alive "$RUN/slurmd.pid" || /usr/sbin/slurmd
  local host; host=$(hostname -s)
  wait_for "node $host" sh -c "sinfo -h -n $host -o %T | grep -Eq '^(idle|mixed|allocated)$' || \
    { scontrol update nodename=$host state=resume 2>/dev/null; false; }"
  wait_for "accounting" sh -c "sacct -n -X -S now >/dev/null"
}

stop_pid() {  # stop_pid <pid file>: SIGTERM the daemon it names, wait for it to go
  alive "$1" || return 0
  local pid t=0; pid=$(cat "$1"); kill "$pid"
  while kill -0 "$pid" 2>/dev/null && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$1"
}

stop_slurm() { stop_pid "$RUN/slurmd.pid"; stop_pid "$RUN/slurmctld.pid"; stop_pid "$RUN/slurmdbd.pid"; }

status() {
  local ok=0
  for d in munge/munged:/run/munge/munged.pid slurmdbd:$RUN/slurmdbd.pid slurmctld:$RUN/slurmctld.pid slurmd:$RUN/slurmd.pid mariadbd:/run/mysqld/ftlab.pid; do
    if alive "${d#*:}"; then echo "${d%%:*}: running (pid $(cat "${d#*:}"))"; else echo "${d%%:*}: not running"; ok=1; fi
  done
  command -v sinfo >/dev/null && sinfo -h -N -o "partition %P: node %N %T, %c CPUs, %m MB" 2>/dev/null || ok=1
  return $ok
}

case "${1:-start}" in
  start)
    need_root start
    mkdir -p "$STATE"
    t0=$EPOCHREALTIME
    install_missing
    write_config
    start_munge
    start_mariadb
    start_slurm
    say "up in $(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $t0}")s: partition $PARTITION, node $(sinfo -h -N -o '%N %c CPUs %m MB')"
    ;;
  status) status ;;
  stop)
    need_root stop
    stop_slurm; stop_pid /run/mysqld/ftlab.pid; stop_pid /run/munge/munged.pid
    say "stopped"
    ;;
  purge)
    need_root purge
    stop_slurm
    if mysqladmin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1; then
      mariadb --socket=/run/mysqld/mysqld.sock -e "DROP DATABASE IF EXISTS slurm_acct_db; DROP USER IF EXISTS 'slurm'@'localhost';" || true
    fi
    stop_pid /run/mysqld/ftlab.pid; stop_pid /run/munge/munged.pid
    rm -rf "$STATE" "$RUN" "$CONF" "$DBD_CONF"
    say "purged (packages kept; remove them with: apt-get purge ${PACKAGES[*]})"
    ;;
  *) die "unknown command '$1'; use: $0 start|status|stop|purge" ;;
esac
