#!/bin/bash
# Stop what scripts/cluster-up.sh started, by pid file and only if the pid still
# names the expected program; nodes first, the database last.
stop() {  # stop PIDFILE PROGRAM
  local file=$1 program=$2 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$program" ]; then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$file"
}
if [ -s /run/slurmctld.pid ] && kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null; then
  scancel --user="$(id -un)" 2>/dev/null
fi
for file in /run/slurmd-*.pid; do stop "$file" slurmd; done
stop /run/slurmctld.pid slurmctld
stop /run/slurmdbd.pid slurmdbd
stop /run/mysqld/mysqld.pid mariadbd
stop /run/munge/munged.pid munged
sed -i '/# optbench-cluster$/d' /etc/hosts 2>/dev/null
echo "[cluster-down] stopped"
