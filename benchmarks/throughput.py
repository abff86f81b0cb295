"""Training and evaluation throughput of a config on whatever devices are present.

  python benchmarks/throughput.py --config configs/face_cnn.py --config.model.width=0.5

Prints examples/s for the jitted train step and eval step (model only, on device-resident batches)
and for the grain input pipeline alone, so a slow run can be attributed to one or the other; for
token models also tokens/s. Each timed step runs on its own real batch, in training order, so
length-bucketed text batches are timed at the lengths training sees (every shape compiled first).
"""

import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from emojax import evaluate, losses, sharding, train
from emojax.data import load_split, pipeline
from emojax.models import get_model

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config to measure.")
flags.DEFINE_integer("steps", 20, "Timed steps (after warm-up), each on its own real batch.")
flags.DEFINE_integer("warmup", 2, "Untimed steps per distinct batch shape, compilation included.")
flags.mark_flags_as_required(["config"])


def _rate(fn, batches, batch_size):
  """Examples/s of `fn` over `batches` (a list, each run once), after a warm-up that compiles every shape."""
  for shape in {tuple(b["input_ids"].shape) if "input_ids" in b else () for b in batches}:
    warm = next(b for b in batches if (tuple(b["input_ids"].shape) if "input_ids" in b else ()) == shape)
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


def main(argv):
  del argv
  config = FLAGS.config
  mesh = sharding.create_mesh(config.mesh)
  data = load_split(config.data, "train")
  model = get_model(config.model, data.num_classes, **data.metadata.get("model_kwargs", {}))
  batch_size = config.train.batch_size
  tx, _ = train.make_optimizer(config, total_steps=1000, steps_per_epoch=100, **train.optimizer_hooks(model))
  # Real batches in training order: token models see the variable lengths (and shapes) training sees.
  iterator = pipeline.train_iterator(data, config, seed=0)
  local_batches = [next(iterator) for _ in range(FLAGS.steps)]
  first = local_batches[0]
  state, _, shardings = train.sharded_init(model, tx, {k: v[:1] for k, v in first.items()}, 0, mesh, config.sharding)
  if hasattr(model, "load_pretrained"):
    state["params"] = jax.device_put(model.load_pretrained(state["params"]), shardings["params"])
  train_step = train.make_train_step(model, tx, config, shardings, mesh, losses.make_loss(config.train, data))
  batches = [sharding.global_batch(b, mesh) for b in local_batches]

  holder = {"state": state}
  def one_train_step(batch):
    holder["state"], metrics = train_step(holder["state"], batch)
    return metrics
  train_rate = _rate(one_train_step, batches, batch_size)

  predict_step = evaluate.make_predict_step(model)
  # Evaluation batches go shortest first: time an even spread of them, not the shortest few.
  pad_to_multiple = config.data.get("pad_to_multiple", 16)
  all_eval = [b for b, _ in pipeline.eval_batches(data, config.eval.batch_size, pad_to_multiple)]
  eval_local = [all_eval[i] for i in np.linspace(0, len(all_eval) - 1, min(FLAGS.steps, len(all_eval))).astype(int)]
  eval_batches = [sharding.global_batch({k: b[k] for k in data.model_inputs}, mesh) for b in eval_local]
  variables = train.variables_of(holder["state"])
  eval_rate = _rate(lambda b: predict_step(variables, b), eval_batches, config.eval.batch_size)
  # A fresh iterator, timed over many more batches than its prefetch buffer holds, so the figure
  # is the pipeline's sustained rate rather than a drain of batches prepared during warm-up.
  fresh = pipeline.train_iterator(data, config, seed=1)
  input_steps = max(FLAGS.steps, 10 * config.data.prefetch)
  start = time.perf_counter()
  for _ in range(input_steps):
    next(fresh)
  input_rate = input_steps * batch_size / (time.perf_counter() - start)

  device = jax.devices()[0]
  print(f"config: {config.model.name} width={config.model.get('width')} dtype={config.model.dtype} "
        f"data={config.data.name} batch={batch_size} eval_batch={config.eval.batch_size}")
  print(f"devices: {jax.device_count()} x {device.device_kind} ({device.platform}); mesh {dict(mesh.shape)}")
  print(f"train_examples_per_second {train_rate:.1f}")
  print(f"eval_examples_per_second {eval_rate:.1f}")
  print(f"input_pipeline_examples_per_second {input_rate:.1f}")
  if "attention_mask" in first:  # tokens: real ones (what the text holds) and the padded slots computed
    for name, rate, sample in (("train", train_rate, local_batches), ("eval", eval_rate, eval_local)):
      real, padded = _tokens(sample)
      print(f"{name}_tokens_per_second {rate * real:.0f} (padded slots {rate * padded:.0f}; "
            f"{real:.1f} real of {padded:.1f} per example)")


if __name__ == "__main__":
  app.run(main)
