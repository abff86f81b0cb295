"""Training and evaluation throughput of a config on whatever devices are present.

  python benchmarks/throughput.py --config configs/face_cnn.py --config.model.width=0.5

Prints examples/s for the jitted train step and eval step (model only, on device-resident batches)
and for the grain input pipeline alone, so a slow run can be attributed to one or the other.
"""

import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from emojax import evaluate, sharding, train
from emojax.data import load_split, pipeline
from emojax.models import get_model

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config to measure.")
flags.DEFINE_integer("steps", 20, "Timed steps (after warm-up).")
flags.DEFINE_integer("warmup", 3, "Untimed steps, compilation included.")
flags.mark_flags_as_required(["config"])


def _rate(fn, steps, batch_size):
  start = time.perf_counter()
  for _ in range(steps):
    out = fn()
  jax.block_until_ready(out)
  return steps * batch_size / (time.perf_counter() - start)


def main(argv):
  del argv
  config = FLAGS.config
  mesh = sharding.create_mesh(config.mesh)
  data = load_split(config.data, "train")
  model = get_model(config.model, data.num_classes)
  batch_size = config.train.batch_size
  tx, _ = train.make_optimizer(config, total_steps=1000, steps_per_epoch=100)
  iterator = pipeline.train_iterator(data, config, seed=0)
  local = next(iterator)
  state, _, shardings = train.sharded_init(model, tx, {k: v[:1] for k, v in local.items()}, 0, mesh, config.sharding)
  train_step = train.make_train_step(model, tx, config, shardings, mesh)
  batch = sharding.global_batch(local, mesh)

  holder = {"state": state}
  def one_train_step():
    holder["state"], metrics = train_step(holder["state"], batch)
    return metrics
  for _ in range(FLAGS.warmup):
    jax.block_until_ready(one_train_step())
  train_rate = _rate(one_train_step, FLAGS.steps, batch_size)

  predict_step = evaluate.make_predict_step(model)
  eval_local = next(pipeline.eval_batches(data, config.eval.batch_size))[0]
  eval_batch = sharding.global_batch({k: eval_local[k] for k in data.model_inputs}, mesh)
  variables = train.variables_of(holder["state"])
  for _ in range(FLAGS.warmup):
    jax.block_until_ready(predict_step(variables, eval_batch))
  eval_rate = _rate(lambda: predict_step(variables, eval_batch), FLAGS.steps, config.eval.batch_size)
  # A fresh iterator, timed over many more batches than its prefetch buffer holds, so the figure
  # is the pipeline's sustained rate rather than a drain of batches prepared during warm-up.
  fresh = pipeline.train_iterator(data, config, seed=1)
  input_steps = max(FLAGS.steps, 10 * config.data.prefetch)
  input_rate = _rate(lambda: next(fresh)["label"], input_steps, batch_size)

  device = jax.devices()[0]
  print(f"config: {config.model.name} width={config.model.get('width')} dtype={config.model.dtype} "
        f"data={config.data.name} batch={batch_size} eval_batch={config.eval.batch_size}")
  print(f"devices: {jax.device_count()} x {device.device_kind} ({device.platform}); mesh {dict(mesh.shape)}")
  print(f"train_examples_per_second {train_rate:.1f}")
  print(f"eval_examples_per_second {eval_rate:.1f}")
  print(f"input_pipeline_examples_per_second {input_rate:.1f}")


if __name__ == "__main__":
  app.run(main)
