#!/usr/bin/env bash
# Stop the daemons cluster-up.sh started (and only those), newest first, and remove the
# configuration files it wrote: a slurm.conf left behind names a controller that is gone, and
# every Slurm command then waits about 9 s for it (the Snakemake Slurm plugin runs
# `scontrol show config` each time Snakemake starts, even for a local run).
set -u
STATE=${HSRDIFF_SLURM_STATE:-/tmp/hsrdiff-slurm}
MARK="# written by hsrdiff tests/slurm/cluster-up.sh"
remove_our_config() {
  local file
  for file in /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/slurmdbd.conf; do
    [ -f "$file" ] && head -1 "$file" | grep -qxF "$MARK" && rm -f "$file"
  done
  return 0
}
[ -f "$STATE/pids" ] || { remove_our_config; exit 0; }
# Cancel our jobs first, so that no slurmstepd outlives its slurmd.
scancel --user="$(id -un)" 2> /dev/null || true
sleep 1
# Alive means present and not a zombie (PID 1 in a container may not reap exited daemons).
alive() { local s; s=$(ps -o stat= -p "$1" 2> /dev/null) && [ -n "$s" ] && [ "${s#Z}" = "$s" ]; }
tac "$STATE/pids" | while read -r name pid; do
  alive "$pid" || continue
  kill "$pid" 2> /dev/null
  for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
  alive "$pid" && kill -9 "$pid" 2> /dev/null
  echo "stopped $name ($pid)"
done
rm -f "$STATE/pids"
remove_our_config
