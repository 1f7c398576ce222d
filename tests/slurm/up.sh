#!/usr/bin/env bash
# Test fixture (from the workplace notes on a one-node SLURM): used only by tests/test_slurm.py.
# Bring up a single-node SLURM 22.05 cluster (Debian 12) for CI.
# ACCOUNTING=1 -> also mariadb + slurmdbd so that sacct works (plugin default status command)
# ACCOUNTING=0 -> no accounting; use `slurm-status-command: squeue` in the snakemake profile
set -euo pipefail
ACCOUNTING=${ACCOUNTING:-0}
PIDDIR=${PIDDIR:-/tmp/slurm_pids}; mkdir -p "$PIDDIR"
export DEBIAN_FRONTEND=noninteractive
pkgs="slurmctld slurmd slurm-client munge"
[ "$ACCOUNTING" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
command -v slurmctld >/dev/null && { [ "$ACCOUNTING" = 0 ] || command -v slurmdbd >/dev/null; } \
  || { apt-get update -q && apt-get install -y -q --no-install-recommends $pkgs; }

HOST=$(hostname -s)
MEM=$(( $(free -m | awk '/^Mem:/{print $2}') - 1024 ))
NODELINE=$(slurmd -C | head -1 | sed -E "s/RealMemory=[0-9]+/RealMemory=$MEM/; s/^NodeName=[^ ]+/NodeName=$HOST/")

# --- munge ---
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge; chmod 0755 /run/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
runuser -u munge -- /usr/sbin/munged
cp /run/munge/munged.pid "$PIDDIR/munged.pid"
munge -n | unmunge >/dev/null

# --- config ---
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*          # fresh state (no stale DRAIN)
if [ "$ACCOUNTING" = 1 ]; then ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost"; else ACCT="AccountingStorageType=accounting_storage/none"; fi
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
$ACCT
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
InactiveLimit=0
KillWait=5
Waittime=0
GresTypes=gpu
$NODELINE Gres=gpu:1 NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
echo "NodeName=$HOST Name=gpu File=/dev/null" > /etc/slurm/gres.conf

# --- accounting (optional) ---
if [ "$ACCOUNTING" = 1 ]; then
  mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
  /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
     --pid-file=/run/mysqld/mysqld.pid --bind-address=127.0.0.1 >/var/log/slurm/mariadb.log 2>&1 &
  for i in $(seq 1 120); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.25; done
  cp /run/mysqld/mysqld.pid "$PIDDIR/mariadbd.pid"
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmpw
CONF
  chmod 600 /etc/slurm/slurmdbd.conf
  /usr/sbin/slurmdbd
  for i in $(seq 1 120); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.25; done
  cp /run/slurmdbd.pid "$PIDDIR/slurmdbd.pid"
fi

# --- slurm daemons ---
/usr/sbin/slurmctld
for i in $(seq 1 120); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.25; done
cp /run/slurmctld.pid "$PIDDIR/slurmctld.pid"
/usr/sbin/slurmd
for i in $(seq 1 240); do sinfo -h -o %T 2>/dev/null | grep -qx idle && break; sleep 0.25; done
cp /run/slurmd.pid "$PIDDIR/slurmd.pid"
sinfo -N -o '%N %T %c %m %G'
