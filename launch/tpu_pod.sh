#!/usr/bin/env bash
# One experiment on a Cloud TPU pod slice: the same command on every worker VM over `gcloud ... ssh --worker=all`,
# with --config.distributed=True; on TPU VMs jax.distributed detects the coordinator, process count and process id
# itself, so those stay -1. Needs the repository checked out at REMOTE_DIR on every worker, with a TPU jax in its
# venv (SETUP=1 does that first). WORKDIR must be shared by all workers: a gs:// bucket (orbax writes there).
#
#   launch/tpu_pod.sh TPU_NAME ZONE WORKDIR CONFIG [--config.field=value ...]
#   launch/tpu_pod.sh my-v4-32 us-central2-b gs://my-bucket/runs/fer configs/face_cnn.py:model=deep_cnn
#   SETUP=1 PROJECT=my-project launch/tpu_pod.sh my-v4-32 us-central2-b gs://my-bucket/runs/fer configs/face_cnn.py
#   DRY_RUN=1 launch/tpu_pod.sh my-v4-32 us-central2-b gs://b/runs/x configs/face_cnn.py   # print the commands only
#
# Env: PROJECT (gcloud --project), REMOTE_DIR (checkout on the workers, default ~/emojax), PYTHON (on the workers,
# relative to REMOTE_DIR, default .venv/bin/python), SETUP=1 (first run SETUP_COMMAND in REMOTE_DIR on every worker;
# default: git pull, make venv, install jax[tpu]). Logs: every worker's output streams back to this terminal (add
# `2>&1 | tee run.log`); metrics, reports and checkpoints go to WORKDIR (written by process 0).
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,15p' "$0"; exit 2
fi
name=$1; zone=$2; workdir=$3; config=$4; shift 4
remote_dir=${REMOTE_DIR:-'~/emojax'}
python=${PYTHON:-.venv/bin/python}
default_setup='git pull --ff-only && make venv && .venv/bin/python -m pip install -q "jax[tpu]>=0.10,<0.11"'
setup_command=${SETUP_COMMAND:-$default_setup}

# A leading ~/ stays unquoted so that the worker's shell expands it.
# shellcheck disable=SC2088
case $remote_dir in
  '~/'*) cd_dir="~/$(printf %q "${remote_dir#\~/}")" ;;
  *) cd_dir=$(printf %q "$remote_dir") ;;
esac
train="cd $cd_dir && PYTHONUNBUFFERED=1 $(printf '%q ' "$python" -m emojax.main --config "$config" \
  --workdir "$workdir" --config.distributed=True "$@")"
train=${train% }
gcloud_ssh=(gcloud compute tpus tpu-vm ssh "$name" --zone "$zone")
[ -z "${PROJECT:-}" ] || gcloud_ssh+=(--project "$PROJECT")
gcloud_ssh+=(--worker=all --command)

# Prints a command with each argument single-quoted where the shell needs it.
show() {
  local arg out=""
  for arg in "$@"; do
    if [[ $arg =~ ^[[:alnum:]_./:=,@%+-]+$ ]]; then out+="$arg "; else out+="'${arg//\'/\'\\\'\'}' "; fi
  done
  echo "${out% }"
}
run() {
  if [ -n "${DRY_RUN:-}" ]; then show "$@"; else "$@"; fi
}

if [ -n "${SETUP:-}" ]; then
  run "${gcloud_ssh[@]}" "cd $cd_dir && $setup_command"
fi
run "${gcloud_ssh[@]}" "$train"
