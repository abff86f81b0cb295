#!/usr/bin/env bash
# Runs one experiment in the background on this machine, resumable: launching the same command
# again after a crash or reboot continues from the last complete checkpoint in WORKDIR.
#
#   launch/local.sh WORKDIR CONFIG [--config.field=value ...]
#   launch/local.sh runs/fer_deep_cnn configs/face_cnn.py:model=deep_cnn --config.model.width=0.5
#
# Logs go to WORKDIR/train.log; `tail -f` it, or point TensorBoard at WORKDIR/tensorboard.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,9p' "$0"; exit 2
fi
workdir=$1; config=$2; shift 2
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || { echo "No Python at $python: run 'make venv' first or set PYTHON." >&2; exit 1; }
mkdir -p "$workdir"
cd "$repo"
PYTHONUNBUFFERED=1 nohup "$python" -m emojax.main --config "$config" --workdir "$workdir" "$@" \
  >>"$workdir/train.log" 2>&1 </dev/null &
echo "started pid $! -> $workdir/train.log"
