"""The training loop: init -> shard -> step -> evaluate -> checkpoint, and eval-only restore.

Determinism is a feature here: the dropout key of step s is fold_in(seed, s), augmentation is
seeded per example position by grain, and the input iterator's position is checkpointed, so a run
killed at any moment and restarted reaches bit-identical parameters (tests/test_resume.py).
"""

import json
import logging
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from emojax import checkpoint as checkpoint_lib
from emojax import losses, reports, restore, sharding
from emojax import metrics as metrics_lib
from emojax.data import device_pipeline, load_split, pipeline
from emojax.metric_writer import MetricWriter, read_metrics


# ----------------------------------------------------------------------------------------------
# Optimizer: warmup + cosine schedule, decoupled weight decay on kernels only, gradient clipping.
# ----------------------------------------------------------------------------------------------
def make_optimizer(
  config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int, is_frozen=None, learning_rate_scale=None
):
  """`is_frozen(path) -> bool` marks parameters that never change (a frozen pretrained encoder: no optimizer
  state either); `learning_rate_scale(path) -> float` scales the others' updates (an encoder fine-tuned gently
  under a new head). Models supply both as methods of the same names (see `Experiment`)."""
  opt = config.optimizer
  if opt.learning_rate <= 0:
    raise ValueError(f"config.optimizer.learning_rate must be positive, got {opt.learning_rate}.")
  warmup_steps = min(int(opt.warmup_epochs * steps_per_epoch), max(total_steps - 1, 0))
  schedule = optax.warmup_cosine_decay_schedule(
    init_value=0.0,
    peak_value=opt.learning_rate,
    warmup_steps=warmup_steps,
    decay_steps=max(total_steps, warmup_steps + 1),
    end_value=opt.learning_rate * opt.final_lr_fraction,
  )
  # Biases and batch-norm scales are not decayed: shrinking them only fights normalization.
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
  if opt.name == "adamw":
    base = optax.adamw(schedule, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay, mask=decay_mask)
  elif opt.name == "sgd":
    base = optax.chain(
      optax.add_decayed_weights(opt.weight_decay, decay_mask),
      optax.sgd(schedule, momentum=opt.get("momentum", 0.9), nesterov=True),
    )
  else:
    raise ValueError(f"config.optimizer.name={opt.name!r}; expected 'adamw' or 'sgd'.")
  clip = [optax.clip_by_global_norm(opt.grad_clip_norm)] if opt.grad_clip_norm > 0 else []
  tx = optax.chain(*clip, base)
  if learning_rate_scale is not None:
    scale = lambda path: float(learning_rate_scale(sharding.path_to_string(path)))
    tx = optax.chain(
      tx,
      optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda updates, state, params=None: (
          jax.tree_util.tree_map_with_path(lambda path, u: u * scale(path) if scale(path) != 1 else u, updates),
          state,
        ),
      ),
    )
  if is_frozen is not None:
    labels = lambda params: jax.tree_util.tree_map_with_path(
      lambda path, _: "frozen" if is_frozen(sharding.path_to_string(path)) else "trained", params
    )
    tx = optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)
  return tx, schedule


def optimizer_hooks(model) -> dict:
  """make_optimizer's `is_frozen` / `learning_rate_scale` from the model's methods of those names (a model
  without them trains every parameter at the full rate)."""
  return {
    "is_frozen": getattr(model, "frozen_parameters", None),
    "learning_rate_scale": getattr(model, "learning_rate_scale", None),
  }


# ----------------------------------------------------------------------------------------------
# State: a plain dict pytree, so orbax, sharding rules and tests see ordinary nested containers.
# ----------------------------------------------------------------------------------------------
def init_state(model, tx, example_batch: dict, seed: int) -> dict:
  variables = model.init(
    {"params": jax.random.key(seed), "dropout": jax.random.key(seed + 1)}, example_batch, train=False
  )
  params = variables.get("params", {})  # a parameter-free model (MeanEnsemble) trains nothing
  return {
    "step": jnp.zeros((), jnp.int32),
    "params": params,
    "batch_stats": variables.get("batch_stats", {}),
    "opt_state": tx.init(params),
  }


def variables_of(state: dict) -> dict:
  return {"params": state["params"], "batch_stats": state["batch_stats"]}


def sharded_init(model, tx, example_batch, seed, mesh, sharding_config):
  """Initializes the state directly into its shardings (FSDP never materializes a full copy)."""
  abstract = jax.eval_shape(lambda: init_state(model, tx, example_batch, seed))
  shardings = sharding.tree_shardings(abstract, mesh, sharding_config)
  state = jax.jit(lambda: init_state(model, tx, example_batch, seed), out_shardings=shardings)()
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
  return state, abstract, shardings


def split_microbatches(batch: dict, count: int, mesh) -> dict:
  """(B, ...) -> (count, B / count, ...) such that every microbatch stays spread over all devices: microbatch j is
  rows j, j + count, j + 2 count, ..., so each device's contiguous block of rows contributes to every microbatch and
  the reshape moves no data between devices."""
  spec = jax.sharding.PartitionSpec(None, sharding.BATCH_AXES)

  def split(x):
    x = x.reshape(x.shape[0] // count, count, *x.shape[1:]).swapaxes(0, 1)
    return jax.lax.with_sharding_constraint(x, jax.sharding.NamedSharding(mesh, spec))

  return jax.tree.map(split, batch)


def make_train_step_fn(model, tx, config: ml_collections.ConfigDict, mesh, loss_fn=None):
  """The (unjitted) `train_step(state, batch) -> (state, metrics)`. `loss_fn(outputs, batch) -> (loss, metrics)`;
  by default the single-label classification loss.

  With `config.train.grad_accum_steps` = k > 1 the batch is processed as k microbatches in a `lax.scan` (one
  compiled step, activations of one microbatch alive at a time, so XLA's memory estimate falls with k; figures in
  docs/scaling.md) and the optimizer applies their mean gradient:
  the same update as one batch for models without batch norm or dropout (tested), while batch norm normalizes
  each microbatch by its own statistics and dropout draws a mask per microbatch.

  On XLA:CPU a convolution's filter gradient inside a loop body takes a slow generic path (that DeepCNN step:
  24x slower); unrolling the loop keeps the fast kernels but loses the memory saving, so accumulation is for
  GPU/TPU memory, and a CPU run is warned.
  """
  loss_fn = loss_fn or losses.make_loss(config.train)
  dropout_key = jax.random.key(config.seed + 2)
  accum = config.train.get("grad_accum_steps", 1)
  if accum > 1 and mesh.devices.flat[0].platform == "cpu":
    logging.warning(
      "config.train.grad_accum_steps=%d on CPU: XLA:CPU runs convolution gradients inside the "
      "accumulation loop on a slow path (DeepCNN: 24x slower steps). On a CPU, prefer a smaller "
      "batch; accumulation is for accelerator memory.",
      accum,
    )

  def gradients(params, batch_stats, batch, rng):
    def objective(params):
      outputs, updates = model.apply(
        {"params": params, "batch_stats": batch_stats},
        batch,
        train=True,
        rngs={"dropout": rng},
        mutable=["batch_stats"],
      )
      loss, metrics = loss_fn(outputs, batch)
      return loss, (metrics, updates.get("batch_stats", {}))

    (loss, (metrics, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return grads, batch_stats, {"loss": loss, **metrics}

  def train_step(state, batch):
    rng = jax.random.fold_in(dropout_key, state["step"])
    if accum == 1:
      grads, batch_stats, metrics = gradients(state["params"], state["batch_stats"], batch, rng)
    else:

      def microstep(carry, inputs):
        grad_sum, batch_stats = carry
        index, microbatch = inputs
        grads, batch_stats, metrics = gradients(
          state["params"], batch_stats, microbatch, jax.random.fold_in(rng, index)
        )
        return (jax.tree.map(jnp.add, grad_sum, grads), batch_stats), metrics

      zeros = jax.tree.map(jnp.zeros_like, state["params"])
      (grad_sum, batch_stats), metrics = jax.lax.scan(
        microstep, (zeros, state["batch_stats"]), (jnp.arange(accum), split_microbatches(batch, accum, mesh))
      )
      grads = jax.tree.map(lambda g: g / accum, grad_sum)
      metrics = jax.tree.map(lambda m: m.mean(0), metrics)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = {
      "step": state["step"] + 1,
      "params": optax.apply_updates(state["params"], updates),
      "batch_stats": batch_stats,
      "opt_state": opt_state,
    }
    return new_state, {**metrics, "grad_norm": optax.tree.norm(grads)}

  return train_step


def make_train_step(model, tx, config: ml_collections.ConfigDict, state_shardings, mesh, loss_fn=None):
  """One jitted training step on a sharded batch (benchmarks and tests; the loop uses `make_multi_step`)."""
  return jax.jit(
    make_train_step_fn(model, tx, config, mesh, loss_fn),
    in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
    out_shardings=(state_shardings, sharding.replicated(mesh)),
    donate_argnums=0,
  )


def make_multi_step(train_step, prepare, state_shardings, mesh):
  """k training steps per dispatch: `multi_step(state, arrays, inputs, width)`, `inputs` with a leading axis of
  k (k batches from grain, or k rows of indices into the device-resident `arrays`), each turned into a batch on
  device by `prepare(arrays, inputs[j], step, width)` and trained on, in a `lax.scan`, so the host dispatches
  once per k steps. Per-step metrics come back stacked [k]. A single step skips the loop: XLA:CPU runs
  convolution gradients inside loops on a slow path (see `make_train_step_fn`)."""

  def multi_step(state, arrays, inputs, width):
    def body(state, x):
      return train_step(state, prepare(arrays, x, state["step"], width))

    if jax.tree.leaves(inputs)[0].shape[0] == 1:
      state, metrics = body(state, jax.tree.map(lambda x: x[0], inputs))
      return state, jax.tree.map(lambda m: m[None], metrics)
    return jax.lax.scan(body, state, inputs)

  return jax.jit(
    multi_step, static_argnums=3, donate_argnums=0, out_shardings=(state_shardings, sharding.replicated(mesh))
  )


def steps_per_dispatch(train_config: ml_collections.ConfigDict, mesh) -> int:
  """`config.train.steps_per_dispatch`; 0 = 1 on CPU (loops there slow convolution gradients), 8 elsewhere."""
  k = train_config.get("steps_per_dispatch", 0)
  if k < 0:
    raise ValueError(f"config.train.steps_per_dispatch={k} must be >= 0 (0 = automatic).")
  return k or (1 if mesh.devices.flat[0].platform == "cpu" else 8)


def dispatch_length(step: int, k: int, total_steps: int, periods) -> int:
  """How many steps the next dispatch runs: k when no event (log, evaluation, checkpoint, the end) falls inside
  them, else 1, so events land on their exact steps and a run compiles at most two loop lengths."""
  events = [total_steps] + [(step // p + 1) * p for p in periods if p > 0]
  return k if min(events) - step >= k else 1


def compiled_programs(jitted) -> int:
  """How many programs a jitted function compiled so far (one per distinct input shape and static argument)."""
  return int(jitted._cache_size())


# ----------------------------------------------------------------------------------------------
# Setup shared by training and eval-only runs.
# ----------------------------------------------------------------------------------------------
def check_batch_size(train_config: ml_collections.ConfigDict, mesh) -> None:
  """Every device gets the same whole number of rows of every microbatch."""
  accum = train_config.get("grad_accum_steps", 1)
  if accum < 1:
    raise ValueError(f"config.train.grad_accum_steps={accum} must be >= 1.")
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if train_config.batch_size % (shards * accum):
    raise ValueError(
      f"config.train.batch_size={train_config.batch_size} must be divisible by the data x fsdp "
      f"mesh size ({shards}) times config.train.grad_accum_steps ({accum})."
    )


class Experiment:
  """Everything derived from a config: mesh, data, model, optimizer, abstract state."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str | Path, need_train_data: bool = True):
    self.config, self.workdir = config, Path(workdir)
    self.mesh = sharding.create_mesh(config.mesh)
    self.eval_data = load_split(config.data, config.data.eval_split)
    self.train_data = load_split(config.data, "train") if need_train_data else None
    num_train = len(self.train_data) if self.train_data is not None else config.train.batch_size
    check_batch_size(config.train, self.mesh)
    self.steps_per_epoch = pipeline.steps_per_epoch(num_train, config.train.batch_size)
    self.total_steps = (
      config.train.num_steps if config.train.num_steps > 0 else int(config.train.num_epochs * self.steps_per_epoch)
    )
    self.model = restore.build_model(config, self.eval_data)
    self.tx, self.schedule = make_optimizer(
      config, self.total_steps, self.steps_per_epoch, **optimizer_hooks(self.model)
    )
    example = {k: v[None] for k, v in pipeline.decode(self.eval_data[0], self.eval_data.model_inputs).items()}
    self.state, self.abstract_state, self.state_shardings = sharded_init(
      self.model, self.tx, example, config.seed, self.mesh, config.sharding
    )
    self.loss_fn = losses.make_loss(config.train, self.train_data if self.train_data is not None else self.eval_data)
    # Input pipeline: the split on the devices (gathered and augmented there) where it fits, else grain.
    training = self.train_data is not None
    self.pipeline = device_pipeline.resolve(self.train_data if training else self.eval_data, config.data, training)
    self.predictor = restore.Predictor.create(config, self.model, self.eval_data, self.mesh, self.pipeline == "device")
    self.predict_step = self.predictor.predict_step
    self.checkpointer = checkpoint_lib.Checkpointer(self.workdir, config.checkpoint)

  def with_pretrained(self, state: dict) -> dict:
    """The state with the model's pretrained weights (wav2vec 2.0, a text encoder, the encoders of end-to-end
    fusion and their batch-norm statistics) copied in, if it has any.

    Only a run that starts from scratch needs them: resumed, evaluated and exported runs restore a checkpoint.
    """
    for key, hook in (("params", "load_pretrained"), ("batch_stats", "load_pretrained_batch_stats")):
      if hasattr(self.model, hook):
        state = {**state, key: jax.device_put(getattr(self.model, hook)(state[key]), self.state_shardings[key])}
    return state

  def predict(self, state, data=None, predict_step=None) -> dict:
    """`predict_step`'s outputs (by default logits and friends) over `data` (the evaluation split) in order."""
    return self.predictor.predict(variables_of(state), data, predict_step)

  def compiled_programs(self) -> dict:
    """Programs compiled so far for evaluation (per token width and batch shape); training adds its own."""
    return {"eval": compiled_programs(self.predictor.eval_step or self.predictor.predict_step)}

  def evaluate(self, state) -> tuple[dict, dict]:
    return self.predictor.evaluate(variables_of(state))


def _scalars(report: dict) -> dict:
  scalars = {k: report["all"][k] for k in metrics_lib.HEADLINE + ("loss",)}
  for subset, metrics in report.items():
    if subset != "all" and isinstance(metrics, dict):
      scalars[f"{subset}/accuracy"] = metrics["accuracy"]
      scalars[f"{subset}/macro_f1"] = metrics["macro_f1"]
  return scalars


# ----------------------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------------------
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  exp = Experiment(config, workdir)
  cfg = config.train
  writer = MetricWriter(workdir, enable_tensorboard=cfg.tensorboard)
  state = exp.state
  loop = {"best_value": None, "best_step": None, "evals_without_improvement": 0, "stopped_early": False}
  restored = exp.checkpointer.restore_latest(exp.abstract_state)
  if restored is not None:
    state, loop = restored
  else:
    state = exp.with_pretrained(state)
  start_step = int(state["step"])
  # Global batch s of the stream is the one step s trains on, whatever the number of processes or pipeline.
  feed, arrays, prepare = make_feed(exp.pipeline, exp.train_data, config, exp.mesh, start_step)
  num_params = sum(x.size for x in jax.tree.leaves(state["params"]))
  steps_each = steps_per_dispatch(cfg, exp.mesh)
  logging.info(
    "%s: %d parameters, %d steps (%d per epoch, batch %d) on mesh %s; starting at step %d; input "
    "pipeline %s, %d step(s) per dispatch",
    config.model.name,
    num_params,
    exp.total_steps,
    exp.steps_per_epoch,
    cfg.batch_size,
    dict(exp.mesh.shape),
    start_step,
    exp.pipeline,
    steps_each,
  )

  multi_step = make_multi_step(
    make_train_step_fn(exp.model, exp.tx, config, exp.mesh, exp.loss_fn), prepare, exp.state_shardings, exp.mesh
  )
  eval_every = cfg.eval_every_steps or exp.steps_per_epoch
  sign = 1 if config.checkpoint.best_mode == "max" else -1
  pending, window_start, window_steps, started = [], None, 0, time.time()

  step = start_step
  while step < exp.total_steps and not loop["stopped_early"]:
    count = dispatch_length(
      step, steps_each, exp.total_steps, (cfg.log_every_steps, eval_every, config.checkpoint.every_steps)
    )
    inputs, width = feed.inputs(step, count)
    state, metrics = multi_step(state, arrays, inputs, width)
    step += count
    pending.append(metrics)
    window_steps += count
    if window_start is None:  # the first dispatch compiles; throughput counts from after it
      jax.block_until_ready(metrics)
      window_start, window_steps = time.time(), 0

    if window_steps and (step % cfg.log_every_steps == 0 or step == exp.total_steps):
      means = (
        {k: float(np.concatenate([np.asarray(jax.device_get(m[k])) for m in pending]).mean()) for k in pending[0]}
        if pending
        else {}
      )
      elapsed = time.time() - window_start
      rate = window_steps * cfg.batch_size / max(elapsed, 1e-9)
      means.update(examples_per_second=rate, learning_rate=float(exp.schedule(step)), epoch=step / exp.steps_per_epoch)
      eta_minutes = (exp.total_steps - step) * cfg.batch_size / max(rate, 1e-9) / 60
      logging.info("step %d/%d (epoch %.2f, ETA %.1f min)", step, exp.total_steps, means["epoch"], eta_minutes)
      writer.write(step, "train", means)
      pending, window_start, window_steps = [], time.time(), 0

    is_eval = step % eval_every == 0 or step == exp.total_steps
    if is_eval:
      eval_started = time.time()
      report, _ = exp.evaluate(state)
      scalars = _scalars(report)
      writer.write(step, "validation", scalars)
      value = scalars[config.checkpoint.best_metric]
      if loop["best_value"] is None or sign * value > sign * loop["best_value"]:
        loop.update(best_value=value, best_step=step, evals_without_improvement=0)
        exp.checkpointer.save_best(step, state, scalars)
      else:
        loop["evals_without_improvement"] += 1
        if 0 < cfg.early_stopping_patience <= loop["evals_without_improvement"]:
          loop["stopped_early"] = True
          logging.info(
            "Early stopping at step %d: no %s improvement for %d evaluations (best %.4f at %d).",
            step,
            config.checkpoint.best_metric,
            cfg.early_stopping_patience,
            loop["best_value"],
            loop["best_step"],
          )
      if window_start is not None:  # evaluation time is not training throughput
        window_start += time.time() - eval_started
    if is_eval or step % config.checkpoint.every_steps == 0 or step == exp.total_steps:
      exp.checkpointer.save_latest(step, state, loop)

  exp.checkpointer.wait()
  compiled = {"train": compiled_programs(multi_step), **exp.compiled_programs()}
  logging.info("Compiled programs this run: %s (train: one per dispatch length and token width)", compiled)
  result = finish(exp, workdir, trained_seconds=time.time() - started, final_step=step, loop=loop, compiled=compiled)
  exp.checkpointer.close()
  return result


def make_feed(kind: str, train_data, config: ml_collections.ConfigDict, mesh, start_step: int):
  """(feed, arrays, prepare) for `make_multi_step` and input pipeline `kind` ("device" or "grain"): the host side
  that hands over each dispatch's inputs, the device-resident split (empty for grain), and the traced batch
  preparation (gather + augment on device, or for grain batches only the batch-level mixing, which needs the
  whole batch)."""
  augment_key = jax.random.key(config.seed + 3)
  if kind == "device":
    data = device_pipeline.DeviceData(train_data, mesh)
    augmenter = device_pipeline.make_augmenter(config.data, train_data.num_classes)
    prepare = device_pipeline.make_prepare(data, augmenter, mesh)
    return (
      device_pipeline.DeviceFeed(data, config, config.seed),
      data.arrays,
      lambda arrays, rows, step, width: prepare(arrays, rows, step, width, augment_key),
    )
  mix = device_pipeline.make_batch_mixer(config.data, train_data.num_classes)
  prepare = (
    (lambda arrays, batch, step, width: batch)
    if mix is None
    else (lambda arrays, batch, step, width: mix(jax.random.fold_in(augment_key, step), batch))
  )
  return pipeline.GrainFeed(train_data, config, config.seed, start_step, mesh), {}, prepare


def finish(
  exp: Experiment, workdir: Path, trained_seconds: float, final_step: int, loop: dict, compiled: dict | None = None
) -> dict:
  """Evaluates the best checkpoint and writes the report, plots and a short summary."""
  state, best_step = exp.checkpointer.restore(exp.abstract_state)
  report, _ = exp.evaluate(state)
  report.update(
    model=exp.config.model.name,
    dataset=exp.config.data.name,
    split=exp.config.data.eval_split,
    checkpoint_step=int(best_step),
    final_step=final_step,
    epochs=round(final_step / exp.steps_per_epoch, 2),
    stopped_early=loop["stopped_early"],
    train_seconds_this_process=round(trained_seconds, 1),
    input_pipeline=exp.pipeline,
    **{f"compiled_{k}_programs": n for k, n in (compiled or {}).items()},
  )
  if jax.process_index() == 0:
    title = f"{exp.config.model.name} on {exp.config.data.name} {exp.config.data.eval_split}"
    reports.write_report(report, workdir / "eval", title)
    reports.plot_training_curves(read_metrics(workdir), workdir / "training_curves.png")
    headline = "  ".join(f"{k} {report['all'][k]:.4f}" for k in metrics_lib.HEADLINE)
    # What the data-quality switches (emojax/data/quality.py) removed or rebalanced, so the report says it.
    quality = {
      name: data.metadata["data_quality"]
      for name, data in (("train", exp.train_data), ("eval", exp.eval_data))
      if data is not None and "data_quality" in data.metadata
    }
    if quality:
      (workdir / "data_quality.json").write_text(json.dumps(quality, indent=2, default=str))
    quality_line = "".join(
      f"\n- data quality ({name} split): "
      + ", ".join(f"{k} {v}" for k, v in q.items() if not isinstance(v, (list, dict)))
      for name, q in quality.items()
    )
    subsets = "".join(
      f"\n- {name}: accuracy {m['accuracy']:.4f} on {m['num_examples']} examples"
      for name, m in report.items()
      if isinstance(m, dict) and name != "all"
    )
    (workdir / "summary.md").write_text(
      f"# {title}\n\nTrained {final_step} steps ({report['epochs']} epochs, batch "
      f"{exp.config.train.batch_size}); best checkpoint at step {best_step}"
      f"{' (stopped early)' if loop['stopped_early'] else ''}.\n\n"
      f"Validation ({report['all']['num_examples']} examples): {headline}{subsets}{quality_line}\n\n"
      "Files: eval/report.md, eval/report.json, eval/confusion_matrix.png, training_curves.png, "
      "metrics.jsonl, tensorboard/, checkpoints/, best/\n"
    )
    logging.info("Best checkpoint (step %d): %s", best_step, headline)
  return report


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str | Path, which: str = "best") -> dict:
  """Eval-only mode: restores the best (or latest) checkpoint of `workdir` and writes a report."""
  run = restore.restore_run(config, workdir, which)
  report, outputs = run.evaluate()
  step = run.step
  report.update(
    model=config.model.name,
    dataset=config.data.name,
    split=config.data.eval_split,
    checkpoint=which,
    checkpoint_step=int(step),
  )
  if jax.process_index() == 0:
    tta = "_tta_flip" if config.eval.get("tta_flip", False) else ""
    out_dir = Path(workdir) / f"eval_{which}_{config.data.eval_split}{tta}"
    reports.write_report(
      report,
      out_dir,
      f"{config.model.name} ({which} checkpoint, step {step}) on {config.data.name} {config.data.eval_split}",
    )
    np.savez_compressed(
      out_dir / "predictions.npz",
      ids=run.eval_data.arrays["id"],
      labels=run.eval_data.arrays["labels" if run.eval_data.multi_label else "label"],
      **outputs,
    )
    logging.info("Wrote %s: %s", out_dir, json.dumps({k: round(report["all"][k], 4) for k in metrics_lib.HEADLINE}))
  return report
