#!/usr/bin/env bash
# N cooperating processes of one experiment on this machine (jax.distributed over loopback, CPU collectives by
# gloo): what a multi-host run does, on one host. Each process owns its share of the devices and reads its own
# shard of the data; process 0 writes metrics, reports and checkpoints.
#
#   launch/multiprocess.sh N WORKDIR CONFIG [--config.field=value ...]
#   launch/multiprocess.sh 2 runs/mp2 configs/face_cnn.py:data=synthetic,runlocal
#   DRY_RUN=1 launch/multiprocess.sh 4 runs/mp4 configs/face_cnn.py   # print the commands only
#
# Logs: WORKDIR/process_<i>.log. Waits for all N and fails if any fails.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,11p' "$0"; exit 2
fi
count=$1; workdir=$2; config=$3; shift 3
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
port=${PORT:-$((20000 + RANDOM % 20000))}
commands=()
for ((i = 0; i < count; i++)); do
  commands+=("JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo PYTHONUNBUFFERED=1 $python -m emojax.main --config $config \
--workdir $workdir --config.distributed=True --config.coordinator_address=localhost:$port \
--config.num_processes=$count --config.process_id=$i $*")
done
if [ -n "${DRY_RUN:-}" ]; then
  printf '%s\n' "${commands[@]}"; exit 0
fi
[ -x "$python" ] || { echo "No Python at $python: run 'make venv' first or set PYTHON." >&2; exit 1; }
mkdir -p "$workdir"
cd "$repo"
pids=()
for ((i = 0; i < count; i++)); do
  bash -c "${commands[$i]}" >"$workdir/process_$i.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
if [ $status -eq 0 ]; then
  echo "all $count processes finished: $workdir"
else
  echo "a process failed: see $workdir/process_*.log" >&2
fi
exit $status
