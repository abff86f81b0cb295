#!/usr/bin/env bash
# One GPU window, one command: a recipe group trained, evaluated and tabulated on one lent H200 (issue 15, item 7).
#
#   launch/gpu_recipes.sh face|speech|text
#
#   python launch/pack_gpu.py face           # here: data + wheels -> .gpu_pack/face (git-ignored), under 64 MiB
#   device tool: run, carry [".gpu_pack/face"], timeout_s 600, command "bash launch/gpu_recipes.sh face"
#   python launch/pack_gpu.py face --subset 4 --no-wheels --out /tmp/p && \
#     BUDGET=tiny PACK=/tmp/p PYTHON=.venv/bin/python bash launch/gpu_recipes.sh face   # the CPU dry run
#
# ONE GROUP PER LENT WINDOW. FER2013 (50.8 MB of JPEGs), RAVDESS (42.5 MB of FLAC) and all-MiniLM-L6-v2 (45 MB in
# float16) cannot share one 64 MiB transfer, so each group is packed, carried and run in a window of its own. Run
# face first (the paper's headline figures), then speech, then text. Each group fits one 10-minute command: ~9 min of
# script (TOTAL_SECONDS) after 1-2 min of machine start and transfer, 12 min in all.
#   face    FER2013: DeepCNN at the published width, ResidualAttentionCNN and CNNBiLSTM at full width, SEEDS seeds
#           each, flip TTA; ensembles of each model's seeds and of all runs
#   speech  RAVDESS: Conformer over log-mel + prosody frames with eGeMAPS functionals, 8 and 7 classes, SEEDS seeds
#           each; final-checkpoint evaluation; ensembles of the final checkpoints
#   text    GoEmotions: all-MiniLM-L6-v2 fine-tuned, SEEDS seeds; ensemble of the seeds
#
# Every recipe is a normal training (python -m emojax.main), several side by side on the one GPU (no preallocation,
# MEM_FRACTION each), with the splits on the device (config.data.pipeline=device) and k steps per dispatch. A run
# still going at TRAIN_SECONDS is stopped and its best checkpoint evaluated (the table says so), so the window always
# ends with a table: $OUT/<group>_results.md and .json, $OUT/<group>_runs.tar.gz (each run's reports, config, metrics
# and log) and $OUT/<group>_log.txt (this script's output).
#
# Environment (defaults in brackets): BUDGET [full] or tiny (the CPU dry run: tiny widths and epochs, same steps);
# SEEDS [face 3, speech 5, text 5]; PACK [.gpu_pack/<group>]; OUT [runs/gpu_recipes]; WORK [/tmp/emojax_gpu/<group>:
# data, wheels, workdirs]; PYTHON [python3]; TRAIN_SECONDS / TOTAL_SECONDS after the start [420 / 540];
# MEM_FRACTION [0.09]; FACE_EPOCHS [100], SPEECH_EPOCHS [80], TEXT_EPOCHS [5]; EXTRA (more --config.* flags for
# every run); ALLOW_SUBSET=1 runs the full budget on a subset pack.
set -uo pipefail

usage() { sed -n '2,9p' "$0"; }
if [ $# -ne 1 ]; then usage; exit 2; fi
group=$1
case "$group" in
  face|speech|text) ;;
  *) echo "launch/gpu_recipes.sh: unknown group '$group'; choose face, speech or text." >&2; usage; exit 2 ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 2
BUDGET=${BUDGET:-full}
PYTHON=${PYTHON:-python3}
PACK=${PACK:-$repo/.gpu_pack/$group}
OUT=${OUT:-$repo/runs/gpu_recipes}
WORK=${WORK:-/tmp/emojax_gpu/$group}
EXTRA=${EXTRA:-}
case "$BUDGET" in
  full) default_seeds=$([ "$group" = face ] && echo 3 || echo 5); TRAIN_SECONDS=${TRAIN_SECONDS:-420}
        TOTAL_SECONDS=${TOTAL_SECONDS:-540} ;;
  tiny) default_seeds=2; TRAIN_SECONDS=${TRAIN_SECONDS:-1200}; TOTAL_SECONDS=${TOTAL_SECONDS:-1500} ;;
  *) echo "launch/gpu_recipes.sh: BUDGET=$BUDGET; use full (the GPU window) or tiny (the CPU dry run)." >&2; exit 2 ;;
esac
SEEDS=${SEEDS:-$default_seeds}
start=$(date +%s)
train_end=$((start + TRAIN_SECONDS))
total_end=$((start + TOTAL_SECONDS))
data=$WORK/data
runs=$WORK/runs
jobs_dir=$runs/jobs
# Job records are this window's (a run's workdir is kept: launched again, a run resumes from its last checkpoint).
rm -rf "$jobs_dir"
mkdir -p "$OUT" "$jobs_dir" || exit 2
: >"$runs/runs.tsv"
exec > >(tee -a "$OUT/${group}_log.txt") 2>&1
echo "gpu_recipes: group $group, budget $BUDGET, $SEEDS seeds, pack $PACK, runs under $runs, started $(date -u)"

# ----------------------------------------------------------------------------------------------
# The pack: verified, unpacked into the readers' layouts, wheels installed where imports fail, one file read.
# ----------------------------------------------------------------------------------------------
"$PYTHON" launch/pack_gpu.py --unpack "$PACK" --to "$data" --site "$WORK/site" || exit 3
subset=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["subset"] or "")' "$PACK/manifest.json")
if [ "$BUDGET" = full ] && [ -n "$subset" ] && [ "${ALLOW_SUBSET:-0}" != 1 ]; then
  echo "The pack holds a subset ($subset per class/actor/file): the full budget wants the whole data set (pack" \
       "without --subset), or set ALLOW_SUBSET=1." >&2
  exit 2
fi
export PYTHONPATH="$WORK/site:$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Several processes share the one GPU: each allocates as it needs, up to its fraction.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM_FRACTION:-0.09}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
# The full budget on a CPU would spend the window on nothing: stop here instead.
"$PYTHON" - "$BUDGET" <<'EOF' || exit 3
import sys
import jax
devices = jax.devices()
print("devices:", devices, "jax", jax.__version__, flush=True)
if sys.argv[1] == "full" and devices[0].platform == "cpu":
  sys.exit("BUDGET=full found only CPU devices: this is the GPU window's budget (BUDGET=tiny is the CPU dry run).")
EOF

# Flags of every run: the split on the device (speech: "auto", see speech()), one shared compilation cache (the
# evaluations and ensembles after training reuse the programs the runs compiled), metrics.jsonl without TensorBoard.
pipeline=device
[ "$group" = speech ] && pipeline=auto
common=("--config.data.pipeline=$pipeline" "--config.compilation_cache_dir=$WORK/jax_cache"
        --config.train.tensorboard=False)
# shellcheck disable=SC2206  # EXTRA is a list of flags, split on spaces on purpose
extra=($EXTRA)

# ----------------------------------------------------------------------------------------------
# Jobs: background processes with their command, start, end and exit status recorded for the table.
# ----------------------------------------------------------------------------------------------
declare -A config_of workdir_of
now() { date +%s; }

# start_job NAME KIND LABEL SEED BUDGET WORKDIR REPORT COMMAND...: runs COMMAND in the background, logging to
# jobs/NAME.log; REPORT (for ensembles) is the report folder it writes.
start_job() {
  local name=$1 kind=$2 label=$3 seed=$4 budget=$5 workdir=$6 report=$7
  shift 7
  mkdir -p "$workdir"
  printf '%s\0' "$@" >"$jobs_dir/$name.args"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$label" "$seed" "$budget" "$workdir" "$report" \
    "$(printf '%q ' "$@")" >>"$runs/runs.tsv"
  (
    started=$(date +%s.%N)
    "$@" >"$jobs_dir/$name.log" 2>&1 &
    echo $! >"$jobs_dir/$name.pid"
    wait $!
    status=$?
    echo "$started $(date +%s.%N) $status" >"$jobs_dir/$name.time"
  ) &
}

start_training() {  # start_training NAME LABEL SEED BUDGET CONFIG FLAGS...
  local name=$1 label=$2 seed=$3 budget=$4 config=$5
  shift 5
  config_of[$name]=$config
  workdir_of[$name]=$runs/$name
  start_job "$name" train "$label" "$seed" "$budget" "$runs/$name" "" \
    "$PYTHON" -m emojax.main --config "$config" --workdir "$runs/$name" "${common[@]}" "$@" "--config.seed=$seed" \
    "${extra[@]}"
}

progress() {  # one line per running job: its latest step and ETA from its log
  local name line
  for name in "$@"; do
    [ -f "$jobs_dir/$name.time" ] && continue
    line=$(grep -o 'step [0-9]*/[0-9]* (epoch [0-9.]*, ETA [0-9.]* min)' "$jobs_dir/$name.log" 2>/dev/null | tail -1)
    echo "  $(( $(now) - start )) s  $name: ${line:-starting}"
  done
}

# wait_jobs DEADLINE NAME...: waits for the jobs; at DEADLINE stops those still running (marked jobs/NAME.stopped).
wait_jobs() {
  local deadline=$1 name last_report pending
  shift
  last_report=$(now)
  while :; do
    pending=()
    for name in "$@"; do [ -f "$jobs_dir/$name.time" ] || pending+=("$name"); done
    [ ${#pending[@]} -eq 0 ] && return 0
    if [ "$(now)" -ge "$deadline" ]; then
      for name in "${pending[@]}"; do
        echo "deadline: stopping $name at $(( $(now) - start )) s"
        touch "$jobs_dir/$name.stopped"
        kill -TERM "$(cat "$jobs_dir/$name.pid" 2>/dev/null)" 2>/dev/null
      done
      sleep 5
      for name in "${pending[@]}"; do kill -KILL "$(cat "$jobs_dir/$name.pid" 2>/dev/null)" 2>/dev/null; done
      sleep 1
      return 1
    fi
    if [ $(( $(now) - last_report )) -ge 60 ]; then progress "${pending[@]}"; last_report=$(now); fi
    sleep 2
  done
}

checkpoint_every() {  # checkpoints at each evaluation (every epoch when evaluations are per epoch: every 8 steps)
  if [ "$1" = 0 ]; then echo 8; else echo "$1"; fi
}

has_checkpoint() {  # has_checkpoint WORKDIR best|latest: orbax finished a step there (not only a "<step>.*-tmp-*")
  local folder=$1/best entry
  [ "$2" = latest ] && folder=$1/checkpoints
  for entry in "$folder"/*; do
    [[ "${entry##*/}" =~ ^[0-9]+$ ]] && return 0
  done
  return 1
}

# evaluate_jobs SUFFIX CHECKPOINT NAME...: --mode=eval of each run's CHECKPOINT (best or latest) as job NAME_SUFFIX.
evaluated=()
evaluate_jobs() {
  local suffix=$1 which=$2 name
  shift 2
  evaluated=()
  for name in "$@"; do
    has_checkpoint "${workdir_of[$name]}" "$which" || { echo "no $which checkpoint in $name: not evaluated"; continue; }
    mapfile -d '' -t args <"$jobs_dir/$name.args"
    start_job "${name}_$suffix" eval "" "" "" "${workdir_of[$name]}" "" "${args[@]}" --mode=eval "--checkpoint=$which"
    evaluated+=("${name}_$suffix")
  done
}

# start_ensemble NAME LABEL CHECKPOINT MEMBER...: mean probabilities of the members that have a CHECKPOINT checkpoint.
ensembles=()
declare -A ensemble_report_used
start_ensemble() {
  local name=$1 label=$2 which=$3 member members=()
  shift 3
  for member in "$@"; do has_checkpoint "${workdir_of[$member]}" "$which" && members+=("$member"); done
  if [ ${#members[@]} -lt 2 ]; then
    echo "ensemble $name: fewer than 2 members with a $which checkpoint; skipped"
    return
  fi
  # The report goes to <first member>/ensemble_<checkpoint>_validation: lead with a member no other ensemble led.
  local first="" others=() report
  for member in "${members[@]}"; do
    if [ -z "$first" ] && [ -z "${ensemble_report_used[${workdir_of[$member]}/$which]:-}" ]; then first=$member
    else others+=("${workdir_of[$member]}"); fi
  done
  if [ -z "$first" ]; then echo "ensemble $name: every member already leads an ensemble; skipped"; return; fi
  report=${workdir_of[$first]}/ensemble_${which}_validation
  ensemble_report_used[${workdir_of[$first]}/$which]=1
  start_job "$name" ensemble "$label" "" "${#members[@]} members, $which checkpoints" "${workdir_of[$first]}" \
    "$report" \
    "$PYTHON" -m emojax.main --config "${config_of[$first]}" --workdir "${workdir_of[$first]}" --mode=ensemble \
    "--ensemble_workdirs=$(IFS=,; echo "${others[*]}")" "--checkpoint=$which" "${common[@]}"
  ensembles+=("$name")
}

stop_note() {  # the runs stopped at the deadline
  local name stopped=()
  for name in "$@"; do [ -f "$jobs_dir/$name.stopped" ] && stopped+=("$name"); done
  echo "${stopped[@]}"
}

# evaluate_stopped MARGIN NAME...: the best checkpoint of each run stopped at the deadline evaluated, waited for until
# MARGIN seconds before the end.
evaluate_stopped() {
  local margin=$1 stopped
  shift
  stopped=$(stop_note "$@")
  [ -n "$stopped" ] || return 0
  # shellcheck disable=SC2086  # a list of names
  evaluate_jobs best best $stopped
  wait_jobs $((total_end - margin)) "${evaluated[@]}"
}

# ----------------------------------------------------------------------------------------------
# face: FER2013, 28,709 training images (batch 256: 112 steps per epoch), 3,589 validation images.
# ----------------------------------------------------------------------------------------------
# Sizing (XLA's cost analysis of one training step, float32 count): DeepCNN width 1.0 2.55 GFLOP per training image
# (73 TFLOP per epoch), ResidualAttentionCNN 1.28 (37), CNNBiLSTM 1.94 (56): 166 TFLOP per epoch of one seed of each.
# 3 seeds x 100 epochs = 49,700 TFLOP, plus 20 flip-TTA evaluations per run (~0.8 PFLOP). The H200 does ~790 TFLOP/s
# of bf16 matrix work; 48x48 convnets with batch norm are largely memory-bound, so at 20-25% MFU that is 255-320 s of
# GPU time, shared by the nine processes (one GPU time-slices between them, so their FLOPs add up). Start-up (import,
# 32k JPEG decodes, compile) takes ~60 s beside it, which leaves the ensembles ~2 min before TOTAL_SECONDS. At 15%
# MFU the runs would reach ~80% of their schedule by TRAIN_SECONDS, the cosine learning rate already below 10% of
# its peak, and be stopped there and evaluated from their best checkpoints (marked in the table).
# Recipe: the config's optimizer family (AdamW, warmup + cosine, decoupled weight decay on kernels), batch 256 at
# learning rate 2e-3 (the repo's H200 sweep's setting), 100 epochs, early stopping off (the cosine runs out), the
# published dropout, the config's augmentation plus random erasing (p=0.5: a regulariser for long schedules; at the
# 18-epoch sweep it cost 0.6 points, where the model was far from overfitting), bf16 compute, flip TTA in every
# evaluation, evaluation every 5 epochs (best checkpoint by accuracy).
face() {
  local width=1.0 batch=256 epochs=${FACE_EPOCHS:-100} log=112 every=560 per_dispatch=16
  if [ "$BUDGET" = tiny ]; then
    width=0.125 batch=16 epochs=${FACE_EPOCHS:-2} log=2 every=0 per_dispatch=0
  fi
  local flags=("--config.data.root=$data/fer2013" "--config.model.width=$width" --config.model.dtype=bfloat16
               --config.eval.tta_flip=True "--config.train.batch_size=$batch" --config.optimizer.learning_rate=2e-3
               "--config.train.num_epochs=$epochs" "--config.train.log_every_steps=$log"
               "--config.train.eval_every_steps=$every" "--config.checkpoint.every_steps=$(checkpoint_every "$every")"
               --config.train.early_stopping_patience=0 --config.data.augment.random_erasing=0.5
               "--config.train.steps_per_dispatch=$per_dispatch")
  local model seed names=()
  local -A by_model
  for model in deep_cnn residual_attention cnn_bilstm; do
    for seed in $(seq 0 $((SEEDS - 1))); do
      start_training "${model}_s$seed" "$model" "$seed" "$epochs epochs x batch $batch, width $width" \
        "configs/face_cnn.py:model=$model" "${flags[@]}"
      names+=("${model}_s$seed")
      by_model[$model]+="${model}_s$seed "
    done
  done
  wait_jobs "$train_end" "${names[@]}"
  evaluate_stopped 90 "${names[@]}"
  if [ "$SEEDS" -ge 2 ]; then
    for model in deep_cnn residual_attention cnn_bilstm; do
      # shellcheck disable=SC2086
      start_ensemble "ensemble_$model" "$model seeds" best ${by_model[$model]}
    done
  fi
  start_ensemble ensemble_all "all face runs" best "${names[@]}"
  wait_jobs $((total_end - 20)) "${ensembles[@]}"
}

# ----------------------------------------------------------------------------------------------
# speech: RAVDESS actors 01-16 train (960 clips, batch 32: 30 steps per epoch), 17-20 validation (240 clips).
# ----------------------------------------------------------------------------------------------
# Sizing: the Conformer (4 blocks, d=96, 0.97 M parameters) costs 0.67 GFLOP per training clip, 0.65 TFLOP per
# epoch: 80 epochs x 10 runs is 0.5 PFLOP, seconds of GPU work; its steps are hundreds of small kernels, so say
# 3-5 ms a step, 2,400 steps, ~10 s per run. The window's cost is the features, on the host's 16 cores:
# log-mel + YIN prosody + eGeMAPS for 1,200 clips (0.08 s of one core each, measured here) and 8 waveform-augmented
# copies of each training clip (pitch, stretch, noise, gain; 0.05 s each), ~450 core-seconds, 30-110 s on 16
# feature threads (numpy, soxr and openSMILE release the GIL for most of it; librosa's Python does not). The
# first run prepares them into the feature cache (keyed by each file's bytes and the feature settings, shared by 8
# and 7 classes); the others start once it trains and read the cache. The copies let the whole training split live
# on the device (waveform augmentation otherwise re-featurises on the host every step). The pipeline is "auto", not
# "device": training resolves to the device either way (the collector checks), but --mode=eval and --mode=ensemble
# build only the evaluation split, which never carries copies, and "device" refuses it there. float32: the model is
# small.
# Recipe: the config's AdamW, warmup 3 epochs + cosine, label smoothing 0.1, SpecAugment on device, batch 32,
# 80 epochs (the CPU figures in the README came from 40), evaluation every 2 epochs; the table gives the best
# checkpoint (chosen on these validation actors, so optimistic) and the final one, whose UA is the fair figure.
speech() {
  local epochs=${SPEECH_EPOCHS:-80} batch=32 copies=8 threads=16 log=30 every=60 per_dispatch=10
  if [ "$BUDGET" = tiny ]; then
    epochs=${SPEECH_EPOCHS:-2} batch=8 copies=1 threads=2 log=2 every=0 per_dispatch=0
  fi
  local flags=("--config.data.root=$data/ravdess" "--config.data.cache_dir=$WORK/feature_cache"
               --config.data.features.prosody=True --config.data.features.egemaps=True
               "--config.data.augment.feature_copies=$copies" "--config.data.feature_threads=$threads"
               "--config.train.batch_size=$batch" "--config.train.num_epochs=$epochs"
               "--config.train.log_every_steps=$log" "--config.train.eval_every_steps=$every"
               "--config.checkpoint.every_steps=$(checkpoint_every "$every")"
               "--config.train.steps_per_dispatch=$per_dispatch")
  local classes labels seed name names=() first=""
  local -A by_classes
  for classes in 8 7; do
    labels=native
    [ "$classes" = 7 ] && labels=ekman7
    for seed in $(seq 0 $((SEEDS - 1))); do
      name=conformer_${classes}classes_s$seed
      start_training "$name" "conformer, $classes classes" "$seed" "$epochs epochs x batch $batch, $copies copies" \
        "configs/speech.py:model=conformer,labels=$labels" "${flags[@]}"
      names+=("$name")
      by_classes[$classes]+="$name "
      if [ -z "$first" ]; then
        # The first run fills the feature cache; the rest start once it has logged a training step (or ended).
        first=$name
        echo "preparing features in $first"
        while [ ! -f "$runs/$first/metrics.jsonl" ] && [ ! -f "$jobs_dir/$first.time" ] \
              && [ "$(now)" -lt "$train_end" ]; do sleep 2; done
        echo "features ready at $(( $(now) - start )) s"
      fi
    done
  done
  wait_jobs "$train_end" "${names[@]}"
  # The final checkpoint of every run (a stopped run's latest), and the best of the stopped runs.
  evaluate_jobs final latest "${names[@]}"
  local finals=("${evaluated[@]}")
  local stopped
  stopped=$(stop_note "${names[@]}")
  if [ -n "$stopped" ]; then
    # shellcheck disable=SC2086
    evaluate_jobs best best $stopped
    finals+=("${evaluated[@]}")
  fi
  [ ${#finals[@]} -gt 0 ] && wait_jobs $((total_end - 60)) "${finals[@]}"
  for classes in 8 7; do
    # shellcheck disable=SC2086
    start_ensemble "ensemble_${classes}classes" "conformer, $classes classes, seeds" latest ${by_classes[$classes]}
  done
  wait_jobs $((total_end - 20)) "${ensembles[@]}"
}

# ----------------------------------------------------------------------------------------------
# text: GoEmotions train.tsv (43,410 comments, batch 32: 1,356 steps per epoch), dev.tsv (5,426).
# ----------------------------------------------------------------------------------------------
# Sizing: the MiniLM-L6 classifier (22.7 M parameters) costs 34 GFLOP per step of 32 length-bucketed comments,
# 46 TFLOP per epoch at the length-bucketed widths; on an H200 it trained at 11,455 comments/s at batch 32 (README).
# Here every batch is padded to one width, 128 tokens (config.data.token_widths): 8.9 GFLOP per training comment,
# 386 TFLOP per epoch (XLA's cost analysis), ~5x the FLOPs of bucketing, for one compiled step instead of one per
# width: an earlier H200 window spent its 15 minutes compiling MiniLM for every batch width in eight processes
# (README). 5 seeds x 5 epochs is 9.6 PFLOP, 40-80 s at 15-30% MFU; start-up (tokenizing 49k comments, loading the
# weights, compiling) ~1 min beside it.
# Recipe: the config's (AdamW at 1e-4, warmup 0.5 epochs, cosine to zero, positive-label weights, sentiment head),
# every weight trained, bf16 compute, 5 epochs (the README's 2 CPU epochs were still rising), evaluation every epoch;
# the table gives dev macro-F1 with per-label thresholds tuned on dev, cross-fitted (tuned on one half, scored on
# the other: the fair figure) and at 0.5.
text() {
  local epochs=${TEXT_EPOCHS:-5} batch=32 log=1356 every=1356 per_dispatch=12
  if [ "$BUDGET" = tiny ]; then
    epochs=${TEXT_EPOCHS:-1} batch=8 log=2 every=0 per_dispatch=0
  fi
  local model=$data/all-MiniLM-L6-v2
  local flags=("--config.data.root=$data/goemotions" "--config.model.pretrained=$model" "--config.data.tokenizer=$model"
               "--config.data.cache_dir=$WORK/text_cache" "--config.data.token_widths=(128,)"
               --config.model.dtype=bfloat16
               "--config.train.batch_size=$batch" "--config.train.num_epochs=$epochs"
               "--config.train.log_every_steps=$log" "--config.train.eval_every_steps=$every"
               "--config.checkpoint.every_steps=$(checkpoint_every "$every")"
               "--config.train.steps_per_dispatch=$per_dispatch")
  local seed names=()
  for seed in $(seq 0 $((SEEDS - 1))); do
    start_training "minilm_s$seed" "all-MiniLM-L6-v2, 28 labels" "$seed" "$epochs epochs x batch $batch" \
      configs/text.py "${flags[@]}"
    names+=("minilm_s$seed")
  done
  wait_jobs "$train_end" "${names[@]}"
  evaluate_stopped 60 "${names[@]}"
  start_ensemble ensemble_minilm "all-MiniLM-L6-v2 seeds" best "${names[@]}"
  wait_jobs $((total_end - 20)) "${ensembles[@]}"
}

"$group"
echo "recipes done at $(( $(now) - start )) s; collecting"
"$PYTHON" launch/collect_gpu_results.py --group "$group" --runs "$runs" --out "$OUT" --budget "$BUDGET" \
  --started "$start" --manifest "$PACK/manifest.json"
status=$?
echo "gpu_recipes: $group finished in $(( $(now) - start )) s (collector exit $status); results in $OUT"
exit $status
