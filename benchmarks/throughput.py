"""Training and evaluation throughput of a config on whatever devices are present.

  python benchmarks/throughput.py --config configs/face_cnn.py --config.model.width=0.5 [--torch] [--json out.json]

Reports, from one run:
- compile: seconds to lower and compile the train step (the persistent compilation cache is off here);
  FLOPs per step from XLA's cost analysis; XLA's memory estimate for the step (arguments + outputs +
  temporaries) and, on GPU/TPU, the device's measured peak bytes in use;
- train: examples/s of the jitted step on device-resident batches (model only) and of the real loop
  (grain iterator -> host-to-device -> step, as training runs it), with each loop step split into
  input wait (host time in the iterator and the transfer) and the rest (dispatch and compute);
- MFU on GPU/TPU: achieved FLOP/s over the chip's peak for the compute dtype (table below); on CPU the
  achieved GFLOP/s only, CPUs have no agreed peak;
- the training loop through each input pipeline (grain on the host, or the split on the device with batches
  gathered and augmented there): examples/s, the share of wall time spent handing over inputs, and the ratio;
- eval examples/s and the input pipeline's examples/s alone; tokens/s for token models;
- with --torch: the PyTorch reference (benchmarks/torch_reference.py) trained on the same batches, and the
  emojax / PyTorch ratio of model-only training examples/s.
Each timed step runs on its own real batch, in training order, so length-bucketed text batches are timed at the
lengths training sees (every shape compiled first).
"""

import collections
import gzip
import json
import re
import resource
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from emojax import losses, prediction, sharding, train
from emojax.data import device_pipeline, load_split, pipeline
from emojax.models import get_model

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config to measure.")
flags.DEFINE_integer("steps", 20, "Timed steps (after warm-up), each on its own real batch.")
flags.DEFINE_integer("warmup", 2, "Untimed steps per distinct batch shape, compilation included.")
flags.DEFINE_bool("torch", False, "Also time the PyTorch reference of the model on the same batches.")
flags.DEFINE_string("json", "", "Also write the figures to this JSON file.")
flags.DEFINE_string(
  "profile",
  "",
  "Also trace 3 train steps into this folder (jax.profiler, Perfetto JSON; open in "
  "ui.perfetto.dev or TensorBoard) and print the ops that took the most time.",
)
flags.mark_flags_as_required(["config"])

# Dense peak FLOP/s per chip: (substring of device_kind, bfloat16 peak, float32 peak). float32 matmuls run as TF32
# on NVIDIA tensor cores and as bf16 passes on TPU under JAX's default precision, so those are their f32 peaks.
PEAK_FLOPS = (
  ("H200", 989e12, 495e12),
  ("H100", 989e12, 495e12),
  ("A100", 312e12, 156e12),
  ("L4", 121e12, 60e12),
  ("TPU v6", 918e12, 918e12),
  ("TPU v5p", 459e12, 459e12),
  ("TPU v5", 197e12, 197e12),
  ("TPU v4", 275e12, 275e12),
)


def peak_flops(device, dtype: str):
  for name, bf16, f32 in PEAK_FLOPS:
    if name.lower() in device.device_kind.lower():
      return bf16 if dtype == "bfloat16" else f32
  return None


def _shape_key(batch):
  return tuple(batch["input_ids"].shape) if "input_ids" in batch else ()


def _rate(fn, batches, batch_size):
  """Examples/s of `fn` over `batches` (a list, each run once), after a warm-up that compiles every shape."""
  for shape in {_shape_key(b) for b in batches}:
    warm = next(b for b in batches if _shape_key(b) == shape)
    for _ in range(FLAGS.warmup):
      jax.block_until_ready(fn(warm))
  start = time.perf_counter()
  for batch in batches:
    out = fn(batch)
  jax.block_until_ready(out)
  return len(batches) * batch_size / (time.perf_counter() - start)


def _tokens(batches):
  """(real tokens, padded token slots) per example of a list of token batches."""
  real = np.mean([np.asarray(b["attention_mask"]).sum() / len(b["attention_mask"]) for b in batches])
  padded = np.mean([b["attention_mask"].shape[1] for b in batches])
  return real, padded


def compile_report(train_step, state, batch) -> dict:
  """Compile time, FLOPs and XLA's memory estimate of one train step."""
  start = time.perf_counter()
  compiled = train_step.lower(state, batch).compile()
  report = {"compile_seconds": time.perf_counter() - start}
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  report["flops_per_step_per_device"] = float(cost.get("flops", 0.0)) if cost else 0.0
  memory = compiled.memory_analysis()
  if memory is not None:
    report["xla_step_memory_bytes"] = int(
      memory.argument_size_in_bytes
      + memory.output_size_in_bytes
      + memory.temp_size_in_bytes
      - memory.alias_size_in_bytes
    )
  return report


def loop_report(iterator, train_step, state, mesh, batch_size: int, steps: int) -> tuple[dict, dict]:
  """The real training loop: input wait (iterator + transfer) vs the rest (dispatch and compute), per step."""
  wait = 0.0
  start = time.perf_counter()
  for _ in range(steps):
    fetch = time.perf_counter()
    batch = sharding.global_batch(next(iterator), mesh)
    wait += time.perf_counter() - fetch
    state, metrics = train_step(state, batch)
  jax.block_until_ready(metrics)
  total = time.perf_counter() - start
  return state, {
    "loop_examples_per_second": steps * batch_size / total,
    "loop_step_ms": 1000 * total / steps,
    "input_wait_ms": 1000 * wait / steps,
    "compute_ms": 1000 * (total - wait) / steps,
  }


def pipeline_comparison(config, data, model, tx, state, mesh, loss_fn, steps: int) -> dict:
  """The training loop as `train.py` runs it (feed -> k-step dispatch), once per input pipeline on the same
  config and starting state: examples/s and the share of wall time the host spent handing over inputs
  (grain: reading, decoding, augmenting and transferring batches; device: the row indices)."""
  step_fn = train.make_train_step_fn(model, tx, config, mesh, loss_fn)
  k = train.steps_per_dispatch(config.train, mesh)
  dispatches = max(1, steps // k)
  report = {"steps_per_dispatch": k}
  for kind in ("grain", "device"):
    reason = device_pipeline.unsupported_reason(data, config.data) if kind == "device" else None
    if reason:
      report["device_pipeline_skipped"] = reason
      continue
    feed, arrays, prepare = train.make_feed(kind, data, config, mesh, start_step=0)
    multi_step = train.make_multi_step(step_fn, prepare, jax.tree.map(lambda x: x.sharding, state), mesh)
    current = jax.tree.map(lambda x: x.copy(), state)
    inputs, width = feed.inputs(0, k)  # compiles
    current, metrics = multi_step(current, arrays, inputs, width)
    jax.block_until_ready(metrics)
    wait, start = 0.0, time.perf_counter()
    for d in range(1, dispatches + 1):
      fetch = time.perf_counter()
      inputs, width = feed.inputs(d * k, k)
      wait += time.perf_counter() - fetch
      current, metrics = multi_step(current, arrays, inputs, width)
    jax.block_until_ready(metrics)
    total = time.perf_counter() - start
    report[f"{kind}_loop_examples_per_second"] = dispatches * k * config.train.batch_size / total
    report[f"{kind}_input_wait_share"] = wait / total
    report[f"{kind}_epoch_seconds"] = len(data) / report[f"{kind}_loop_examples_per_second"]
  if "device_loop_examples_per_second" in report:
    report["device_over_grain"] = report["device_loop_examples_per_second"] / report["grain_loop_examples_per_second"]
  return report


def profile_steps(train_step, state, batches, directory: str, top: int = 15):
  """Traces 3 steps and prints the time per step of the costliest XLA ops, numbered copies of one fusion kind
  (`transpose_copy_fusion.12`, `.13`, ...) summed as one row."""
  with jax.profiler.trace(directory, create_perfetto_trace=True):
    for batch in batches[:3]:
      state, metrics = train_step(state, batch)
    jax.block_until_ready(metrics)
  trace = sorted(Path(directory).glob("**/*.trace.json.gz"))[-1]
  totals = collections.Counter()
  for event in json.load(gzip.open(trace))["traceEvents"]:
    name = event.get("name", "")
    if event.get("ph") == "X" and not name.startswith(("$", "ThunkExecutor", "Pjit", "Common", "Wait")):
      totals[re.sub(r"\.\d+$", "", name)] += event.get("dur", 0) / 1000 / len(batches[:3])
  print(f"profile: {trace}\nms per step (summed over devices) by op kind:")
  for name, ms in totals.most_common(top):
    print(f"  {ms:9.1f}  {name}")
  return state


def main(argv):
  del argv
  config = FLAGS.config
  sharding.configure_xla_cpu(config.get("xla_cpu_ynnpack", True))
  mesh = sharding.create_mesh(config.mesh)
  data = load_split(config.data, "train")
  model = get_model(config.model, data.num_classes, **data.metadata.get("model_kwargs", {}))
  batch_size = config.train.batch_size
  train.check_batch_size(config.train, mesh)
  tx, _ = train.make_optimizer(config, total_steps=1000, steps_per_epoch=100, **train.optimizer_hooks(model))
  # Real batches in training order: token models see the variable lengths (and shapes) training sees. Read in
  # this thread (no reader threads, no prefetch), so no pipeline work competes with the model-only timings.
  quiet = config.copy_and_resolve_references()
  quiet.data.read_threads, quiet.data.prefetch, quiet.data.worker_count = 0, 0, 0
  iterator = pipeline.train_iterator(data, quiet, seed=0)
  local_batches = [next(iterator) for _ in range(FLAGS.steps)]
  first = local_batches[0]
  state, _, shardings = train.sharded_init(model, tx, {k: v[:1] for k, v in first.items()}, 0, mesh, config.sharding)
  if hasattr(model, "load_pretrained"):
    state["params"] = jax.device_put(model.load_pretrained(state["params"]), shardings["params"])
  num_params = sum(x.size for x in jax.tree.leaves(state["params"]))
  train_step = train.make_train_step(model, tx, config, shardings, mesh, losses.make_loss(config.train, data))
  batches = [sharding.global_batch(b, mesh) for b in local_batches]
  report = {
    "model": config.model.name,
    "width": config.model.get("width"),
    "dtype": config.model.dtype,
    "data": config.data.name,
    "batch_size": batch_size,
    "grad_accum_steps": config.train.grad_accum_steps,
    "parameters": int(num_params),
    "devices": jax.device_count(),
    "processes": jax.process_count(),
    "device_kind": jax.devices()[0].device_kind,
    "platform": jax.devices()[0].platform,
    "mesh": dict(mesh.shape),
  }
  report.update(compile_report(train_step, state, batches[0]))

  holder = {"state": state}

  def one_train_step(batch):
    holder["state"], metrics = train_step(holder["state"], batch)
    return metrics

  report["train_examples_per_second"] = _rate(one_train_step, batches, batch_size)
  report["train_step_ms"] = 1000 * batch_size / report["train_examples_per_second"]
  if FLAGS.profile:
    holder["state"] = profile_steps(train_step, holder["state"], batches, FLAGS.profile)

  predict_step = prediction.make_predict_step(model)
  # Evaluation batches go shortest first: time an even spread of them, not the shortest few.
  all_eval = [b for b, _ in pipeline.eval_batches(data, config.eval.batch_size, pipeline.token_widths(config.data))]
  eval_local = [all_eval[i] for i in np.linspace(0, len(all_eval) - 1, min(FLAGS.steps, len(all_eval))).astype(int)]
  eval_batches = [sharding.global_batch({k: b[k] for k in data.model_inputs}, mesh) for b in eval_local]
  variables = train.variables_of(holder["state"])
  report["eval_examples_per_second"] = _rate(lambda b: predict_step(variables, b), eval_batches, config.eval.batch_size)
  # The loop as training runs it: the configured reader threads and prefetch, continuing the same stream.
  loop_iterator = pipeline.train_iterator(data, config, seed=0, start_batch=FLAGS.steps)
  holder["state"], loop = loop_report(loop_iterator, train_step, holder["state"], mesh, batch_size, FLAGS.steps)
  report.update(loop)
  report.update(
    pipeline_comparison(
      config, data, model, tx, holder["state"], mesh, losses.make_loss(config.train, data), FLAGS.steps
    )
  )
  # A fresh iterator, timed over many more batches than its prefetch buffer holds, so the figure
  # is the pipeline's sustained rate rather than a drain of batches prepared during warm-up.
  fresh = pipeline.train_iterator(data, config, seed=1)
  input_steps = max(FLAGS.steps, 10 * config.data.prefetch)
  start = time.perf_counter()
  for _ in range(input_steps):
    next(fresh)
  report["input_pipeline_examples_per_second"] = input_steps * batch_size / (time.perf_counter() - start)

  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and "peak_bytes_in_use" in stats:
    report["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
  report["host_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  flops_per_second = report["flops_per_step_per_device"] * report["train_examples_per_second"] / batch_size
  report["achieved_tflops_per_device"] = flops_per_second / 1e12
  peak = peak_flops(device, config.model.dtype)
  if peak:
    report["peak_tflops_per_device"] = peak / 1e12
    report["mfu"] = flops_per_second / peak

  if FLAGS.torch:
    import torch_reference  # beside this script (benchmarks/ is on sys.path when it runs)

    reference = torch_reference.train_rate(config, local_batches, data.num_classes, warmup=FLAGS.warmup)
    report.update({f"torch_{k}": v for k, v in reference.items()})
    report["emojax_over_torch"] = report["train_examples_per_second"] / reference["examples_per_second"]

  print_report(report, local_batches, eval_local)
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(report, f, indent=2)


def print_report(r: dict, local_batches, eval_local) -> None:
  mib = lambda b: f"{b / 2**20:.0f} MiB"
  print(
    f"config: {r['model']} width={r['width']} dtype={r['dtype']} data={r['data']} batch={r['batch_size']} "
    f"grad_accum={r['grad_accum_steps']} parameters={r['parameters']:,}"
  )
  print(
    f"devices: {r['devices']} x {r['device_kind']} ({r['platform']}), {r['processes']} process(es); mesh {r['mesh']}"
  )
  print(f"compile_seconds {r['compile_seconds']:.2f}  (train step, no persistent cache)")
  print(
    f"train_examples_per_second {r['train_examples_per_second']:.1f}  (model only; step {r['train_step_ms']:.1f} ms)"
  )
  print(
    f"loop_examples_per_second {r['loop_examples_per_second']:.1f}  (step {r['loop_step_ms']:.1f} ms = input wait "
    f"{r['input_wait_ms']:.1f} ms + dispatch/compute {r['compute_ms']:.1f} ms)"
  )
  for kind in ("grain", "device"):
    if f"{kind}_loop_examples_per_second" in r:
      print(
        f"{kind}_pipeline_loop_examples_per_second {r[f'{kind}_loop_examples_per_second']:.1f}  (input wait "
        f"{100 * r[f'{kind}_input_wait_share']:.1f}% of wall time; {r['steps_per_dispatch']} step(s) per dispatch; "
        f"an epoch of {r['data']} train in {r[f'{kind}_epoch_seconds']:.1f} s)"
      )
  if "device_over_grain" in r:
    print(f"device_over_grain {r['device_over_grain']:.2f}")
  elif "device_pipeline_skipped" in r:
    print(f"device pipeline not measured: {r['device_pipeline_skipped']}")
  print(f"eval_examples_per_second {r['eval_examples_per_second']:.1f}")
  print(f"input_pipeline_examples_per_second {r['input_pipeline_examples_per_second']:.1f}")
  memory = [
    f"XLA step estimate {mib(r['xla_step_memory_bytes'])}" if "xla_step_memory_bytes" in r else "",
    f"device peak {mib(r['device_peak_bytes'])}" if "device_peak_bytes" in r else "",
    f"host peak RSS {mib(r['host_peak_rss_bytes'])}",
  ]
  print("memory: " + ", ".join(m for m in memory if m))
  flops = (
    f"flops_per_step {r['flops_per_step_per_device'] / 1e9:.1f} GFLOP per device; achieved "
    f"{r['achieved_tflops_per_device'] * 1e3:.1f} GFLOP/s"
  )
  print(
    flops
    + (
      f"; MFU {100 * r['mfu']:.1f}% of {r['peak_tflops_per_device']:.0f} TFLOP/s"
      if "mfu" in r
      else "; MFU n/a (no peak figure for this device)"
    )
  )
  if "attention_mask" in local_batches[0]:  # tokens: real ones (what the text holds) and the padded slots computed
    for name, rate, sample in (
      ("train", r["train_examples_per_second"], local_batches),
      ("eval", r["eval_examples_per_second"], eval_local),
    ):
      real, padded = _tokens(sample)
      print(
        f"{name}_tokens_per_second {rate * real:.0f} (padded slots {rate * padded:.0f}; "
        f"{real:.1f} real of {padded:.1f} per example)"
      )
  if "emojax_over_torch" in r:
    print(
      f"torch_train_examples_per_second {r['torch_examples_per_second']:.1f}  (PyTorch {r['torch_version']} eager, "
      f"{r['torch_threads']} threads, {r['torch_parameters']:,} parameters)"
    )
    print(f"emojax_over_torch {r['emojax_over_torch']:.2f}")


if __name__ == "__main__":
  app.run(main)
