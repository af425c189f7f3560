#!/usr/bin/env bash
# Start a real one-node Slurm cluster on 127.0.0.1 for the project's tests: Debian's munge,
# slurmctld, slurmd and (for a real `sacct`, as on production clusters) slurmdbd with MariaDB.
# Run as root on Debian; no systemd needed. Two partitions, `cpu` (default) and `gpu`, and two
# fake GPUs (gres on /dev/null and /dev/zero): jobs that ask for GPUs are scheduled and
# accounted as on a GPU node, and torch still finds no CUDA, so the work runs on the CPU.
#
#   HSRDIFF_SLURM_STATE  state, logs and the list of daemons we started (default /tmp/hsrdiff-slurm)
#
# cluster-down.sh stops exactly the daemons listed in $HSRDIFF_SLURM_STATE/pids.
set -euo pipefail
STATE=${HSRDIFF_SLURM_STATE:-/tmp/hsrdiff-slurm}
export DEBIAN_FRONTEND=noninteractive

MARK="# written by hsrdiff tests/slurm/cluster-up.sh"
# Exit code 3: this machine cannot host the test cluster (the test is skipped, not failed).
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
  echo "cluster-up.sh needs root on Debian (apt-get); this is uid $(id -u)" >&2
  exit 3
fi
# Never touch a real cluster's configuration.
if [ -e /etc/slurm/slurm.conf ] && ! head -1 /etc/slurm/slurm.conf | grep -qF "$MARK"; then
  echo "/etc/slurm/slurm.conf exists and is not the test cluster's: leaving this machine's Slurm alone" >&2
  exit 3
fi
if pgrep -x slurmctld > /dev/null || pgrep -x slurmd > /dev/null; then
  echo "slurmctld or slurmd is already running; stop it first (tests/slurm/cluster-down.sh)" >&2
  exit 3
fi

packages="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
if ! dpkg -s $packages >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi

mkdir -p "$STATE"/{ctld,spool,log,run,db}
: > "$STATE/pids"
started() { echo "$1 $2" >> "$STATE/pids"; }
wait_for() {  # wait_for <tries of 0.2 s> <command...>
  local tries=$1; shift
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# munge: the Debian package makes the key; an image built without its postinst may lack it.
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --force
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
if ! (munge -n | unmunge) >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  wait_for 50 test -s /run/munge/munged.pid
  started munged "$(cat /run/munge/munged.pid)"
fi

# The configuration must be /etc/slurm/slurm.conf: the plugin's job step removes SLURM_CONF
# from the environment of its inner srun, which then only finds the compiled-in path.
host=$(hostname -s)
# slurmd -C reports the real topology; the configured memory must not exceed the detected.
node=$(slurmd -C | head -1 | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^RealMemory=/) {split($i, a, "="); $i = "RealMemory=" a[2] - 1024} print}')
cat > /etc/slurm/slurm.conf <<CONF
${MARK}
ClusterName=hsrdiff-ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=${STATE}/ctld
SlurmdSpoolDir=${STATE}/spool
SlurmctldPidFile=${STATE}/run/slurmctld.pid
SlurmdPidFile=${STATE}/run/slurmd.pid
SlurmctldLogFile=${STATE}/log/slurmctld.log
SlurmdLogFile=${STATE}/log/slurmd.log
# No cgroups: works in containers without a delegated cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
ReturnToService=2
MinJobAge=300
# slurmctld checks time limits (and sends --signal warnings) every 30 s; a job is killed
# KillWait seconds after its SIGTERM.
KillWait=30
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
JobCompType=jobcomp/none
# sacct shows the plugin's --comment (rule_<name>_wildcards_<...>): which rule each job ran.
AccountingStoreFlags=job_comment
GresTypes=gpu
${node} NodeAddr=127.0.0.1 Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=${host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${host} MaxTime=INFINITE State=UP
CONF
# Two fake GPUs, so that a 2-GPU training job (torchrun, 2 processes) is scheduled. A gpu gres
# needs a device file (a count alone leaves the node INVALID); /dev/null and /dev/zero are two.
cat > /etc/slurm/gres.conf <<CONF
${MARK}
AutoDetect=off
NodeName=${host} Name=gpu File=/dev/null
NodeName=${host} Name=gpu File=/dev/zero
CONF

# MariaDB + slurmdbd: real accounting, so that sacct answers as on a production cluster.
if [ ! -d "$STATE/db/mysql" ]; then
  mariadb-install-db --user=root --datadir="$STATE/db" --skip-test-db > "$STATE/log/mariadb-install.log" 2>&1
fi
mariadbd --user=root --datadir="$STATE/db" --socket="$STATE/run/mysql.sock" \
  --pid-file="$STATE/run/mariadb.pid" --bind-address=127.0.0.1 --port=3306 \
  --log-error="$STATE/log/mariadb.log" --innodb-buffer-pool-size=64M \
  --innodb-lock-wait-timeout=900 > /dev/null 2>&1 &
wait_for 150 test -S "$STATE/run/mysql.sock"
wait_for 50 test -s "$STATE/run/mariadb.pid"
started mariadbd "$(cat "$STATE/run/mariadb.pid")"
mariadb -S "$STATE/run/mysql.sock" -u root -e "
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'hsrdiff-ci';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
cat > /etc/slurm/slurmdbd.conf <<CONF
${MARK}
AuthType=auth/munge
DbdHost=${host}
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=${STATE}/run/slurmdbd.pid
LogFile=${STATE}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=hsrdiff-ci
StorageLoc=slurm_acct_db
CONF
chmod 600 /etc/slurm/slurmdbd.conf   # slurmdbd refuses a configuration others can read
slurmdbd
wait_for 100 sacctmgr -n list cluster
started slurmdbd "$(cat "$STATE/run/slurmdbd.pid")"

slurmctld
wait_for 50 scontrol ping
started slurmctld "$(cat "$STATE/run/slurmctld.pid")"
slurmd
state=""
for _ in $(seq 100); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -1)
  [ "$state" = idle ] && break
  sleep 0.2
done
started slurmd "$(cat "$STATE/run/slurmd.pid")"
if [ "$state" != idle ]; then
  echo "the node did not become idle (state: ${state:-none})" >&2
  scontrol show node "$host" >&2
  exit 1
fi
# slurmctld registers the cluster; a project account lets `slurm_account` be exercised.
sacctmgr -i add account hsrdiff Description=ci Organization=ci > /dev/null || true
sacctmgr -i add user root Account=hsrdiff > /dev/null || true
sinfo
