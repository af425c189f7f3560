#!/usr/bin/env bash
# Stop the daemons cluster-up.sh started (and only those), newest first.
set -u
STATE=${HSRDIFF_SLURM_STATE:-/tmp/hsrdiff-slurm}
[ -f "$STATE/pids" ] || exit 0
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
