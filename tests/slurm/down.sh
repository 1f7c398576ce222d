#!/usr/bin/env bash
# Test fixture (from the workplace notes on a one-node SLURM): used only by tests/test_slurm.py.
# stop the daemons started by up.sh, by recorded PID, in reverse order
PIDDIR=${PIDDIR:-/tmp/slurm_pids}
for d in slurmd slurmctld slurmdbd mariadbd munged; do
  f="$PIDDIR/$d.pid"; [ -s "$f" ] || continue; p=$(cat "$f")
  kill "$p" 2>/dev/null && echo "stopping $d ($p)"
  for i in $(seq 1 40); do s=$(ps -o stat= -p "$p" 2>/dev/null | cut -c1); [ -z "$s" -o "$s" = Z ] && break; sleep 0.25; done
  rm -f "$f"
done
# remove the configuration up.sh wrote: with a slurm.conf naming a stopped controller, every later
# `snakemake` start waits ~9 s (the slurm executor plugin runs `scontrol show config` on import)
rm -f /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/slurmdbd.conf
