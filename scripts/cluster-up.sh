#!/bin/bash
# A real, throw-away Slurm cluster on this one Debian machine: try the Slurm
# path on a laptop or in CI before the real cluster.
#
# Starts munged, MariaDB + slurmdbd (accounting, so that sacct works), one
# slurmctld and one slurmd per emulated node (n1..nN on 127.0.0.1). Each node
# has fake GPUs: GRES gpu backed by /dev/optbench-gpuK character devices, so
# jobs are scheduled on GPUs and see CUDA_VISIBLE_DEVICES without a real GPU,
# and then the node feature "fakegpu". Associations, their limits and QOS
# limits are enforced, as on a real cluster.
# Needs root and apt (no systemd). Stop it with scripts/cluster-down.sh.
#
#   OPTBENCH_NODES=2            emulated compute nodes
#   OPTBENCH_GPUS=2             fake GPUs per node (0: none)
#   OPTBENCH_MAX_ARRAY_SIZE=1001  Slurm's MaxArraySize (array indices 0..N-1)
#   OPTBENCH_MAX_JOB_COUNT=50000  Slurm's MaxJobCount
#   OPTBENCH_MAX_TIME=1-00:00:00  the partition's time limit
set -euo pipefail
NODES=${OPTBENCH_NODES:-2}
GPUS=${OPTBENCH_GPUS:-2}
MAX_ARRAY_SIZE=${OPTBENCH_MAX_ARRAY_SIZE:-1001}
MAX_JOB_COUNT=${OPTBENCH_MAX_JOB_COUNT:-50000}
MAX_TIME=${OPTBENCH_MAX_TIME:-1-00:00:00}
CLUSTER=optbench
export DEBIAN_FRONTEND=noninteractive

here=$(cd "$(dirname "$0")" && pwd)
say() { echo "[cluster-up] $*"; }
[ "$(id -u)" = 0 ] || { echo "cluster-up: run as root (it installs packages and starts daemons)." >&2; exit 2; }

"$here/cluster-down.sh" >/dev/null  # idempotent: a previous instance goes first

packages="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
if ! dpkg -s $packages >/dev/null 2>&1; then
  say "installing $packages"
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $packages >/dev/null
fi

# ---- configuration -----------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 / NODES ))  # more makes a node INVAL
node_names=$(seq -f 'n%g' 1 "$NODES" | tr '\n' ' ')
# torch.distributed uses the first node's name as MASTER_ADDR: the names must resolve.
sed -i '/# optbench-cluster$/d' /etc/hosts
echo "127.0.0.1 $node_names # optbench-cluster" >> /etc/hosts

gres=""
features=""
if [ "$GPUS" -gt 0 ]; then
  for k in $(seq 0 $((GPUS - 1))); do
    [ -e "/dev/optbench-gpu$k" ] || mknod -m 666 "/dev/optbench-gpu$k" c 1 3  # a /dev/null twin
  done
  gres="Gres=gpu:$GPUS"
  features="Features=fakegpu"
  printf 'AutoDetect=off\nNodeName=n[1-%d] Name=gpu File=/dev/optbench-gpu[0-%d]\n' "$NODES" $((GPUS - 1)) \
    > /etc/slurm/gres.conf
else
  rm -f /etc/slurm/gres.conf
fi

{
  cat <<CONF
# Written by optbench's scripts/cluster-up.sh; overwritten on the next start.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
# A short credential lifetime lets requeued jobs start again after seconds, not minutes.
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MaxArraySize=$MAX_ARRAY_SIZE
MaxJobCount=$MAX_JOB_COUNT
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmctldPort=6817
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd-%n
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
# limits and qos: jobs over an association's or a QOS's limits wait (or are refused), as on a real cluster.
AccountingStorageEnforce=associations,limits,qos
MinJobAge=300
KillWait=5
CONF
  if [ "$GPUS" -gt 0 ]; then echo "GresTypes=gpu"; echo "AccountingStorageTRES=gres/gpu"; fi
  for i in $(seq 1 "$NODES"); do
    echo "NodeName=n$i NodeAddr=127.0.0.1 NodeHostname=$host Port=$((17000 + i)) CPUs=$cpus RealMemory=$mem_mb $gres $features State=UNKNOWN"
  done
  echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=$MAX_TIME State=UP"
} > /etc/slurm/slurm.conf

mkdir -p /var/lib/slurm/slurmctld /var/log/slurm
chown slurm:slurm /var/lib/slurm/slurmctld /var/log/slurm
rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd-n*  # fresh state: job ids restart at 1

# ---- munge -------------------------------------------------------------------
mkdir -p /run/munge && chown munge:munge /run/munge
[ -s /etc/munge/munge.key ] || { mungekey --create --force; chown munge:munge /etc/munge/munge.key; }
pgrep -u munge -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null

# ---- accounting: MariaDB + slurmdbd --------------------------------------------
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! mariadb -e 'select 1' >/dev/null 2>&1; then
  /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 >/var/log/slurm/mariadb.log 2>&1 &
  for _ in $(seq 150); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
fi
mariadb -e "DROP DATABASE IF EXISTS optbench_acct_db"  # job ids restart at 1, so accounting starts fresh too
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'optbench';
            GRANT ALL ON optbench_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=optbench
StorageLoc=optbench_acct_db
CONF
chown slurm:slurm /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf
/usr/sbin/slurmdbd
for _ in $(seq 150); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
# Associations are enforced, like on a real cluster: root may use the accounts "lab" (default) and "other".
sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -i add account lab,other cluster="$CLUSTER" >/dev/null
sacctmgr -i add user root account=lab,other defaultaccount=lab cluster="$CLUSTER" >/dev/null

# ---- controller and nodes ----------------------------------------------------
/usr/sbin/slurmctld
for i in $(seq 1 "$NODES"); do
  mkdir -p "/var/lib/slurm/slurmd-n$i"
  /usr/sbin/slurmd -N "n$i"
done
for _ in $(seq 300); do
  [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -cx idle)" = "$NODES" ] && break
  sleep 0.2
done
idle=$(sinfo -h -N -o '%T' | grep -cx idle || true)
[ "$idle" = "$NODES" ] || { echo "cluster-up: only $idle of $NODES nodes came up; see /var/log/slurm/." >&2; exit 1; }
sinfo -N -o '%N %T %c %m %G'
say "$NODES nodes × $GPUS fake GPUs idle; MaxArraySize=$MAX_ARRAY_SIZE; stop with make cluster-down"
