"""grain input pipelines: a `Dataset` in, per-process numpy batches out.

Training: shard by process -> shuffle (reshuffled every epoch) -> repeat -> decode -> augment ->
batch -> prefetch (threads, or worker processes if `worker_count` > 0). It is a grain
`DatasetIterator`, so its position goes into every checkpoint and a resumed run continues with
exactly the batches an uninterrupted run would have seen.
Evaluation: every example exactly once, in order, the last batch padded and marked by `valid`.
"""

import math

import grain
import jax
import ml_collections
import numpy as np

from emojax.data import augment as augment_lib
from emojax.data.base import Dataset

MODEL_INPUTS = ("image", "label")  # what goes to the device; ids and subsets stay on the host


def decode(example: dict) -> dict:
  """uint8 image -> float32 in [0, 1]; drops host-only fields."""
  return {"image": example["image"].astype(np.float32) / 255.0, "label": np.int32(example["label"])}


def per_process_batch_size(global_batch_size: int) -> int:
  processes = jax.process_count()
  if global_batch_size % processes:
    raise ValueError(f"config.train.batch_size={global_batch_size} must be divisible by the number of "
                     f"processes ({processes}).")
  return global_batch_size // processes


def train_iterator(dataset: Dataset, config: ml_collections.ConfigDict, seed: int) -> grain.DatasetIterator:
  """An endless, deterministic, checkpointable iterator of training batches."""
  augment_config = config.data.augment
  augment_lib.validate(augment_config)
  ds = grain.MapDataset.source(dataset)[jax.process_index()::jax.process_count()]
  ds = ds.shuffle(seed=seed).repeat(None).map(decode)
  if augment_config.enabled:
    ds = ds.random_map(lambda ex, rng: {**ex, "image": augment_lib.augment_image(ex["image"], rng, augment_config)},
                       seed=seed + 1)
  ds = ds.batch(per_process_batch_size(config.train.batch_size), drop_remainder=True)
  iter_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=config.data.read_threads,
                                                 prefetch_buffer_size=config.data.prefetch))
  if config.data.worker_count > 0:
    iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.data.worker_count))
  return iter(iter_ds)


def eval_batches(dataset: Dataset, global_batch_size: int):
  """Yields (batch, indices): every example once, padded to full batches with `valid` = 0.

  Every process yields the same number of batches (multi-host collectives need that), each from
  its own slice of the data.
  """
  batch_size = per_process_batch_size(global_batch_size)
  indices = np.arange(len(dataset))[jax.process_index()::jax.process_count()]
  num_batches = math.ceil(math.ceil(len(dataset) / jax.process_count()) / batch_size)
  template = decode(dataset[0])
  for b in range(num_batches):
    chunk = indices[b * batch_size:(b + 1) * batch_size]
    examples = [decode(dataset[i]) for i in chunk]
    batch = {k: np.zeros((batch_size,) + np.shape(v), np.asarray(v).dtype) for k, v in template.items()}
    for row, example in enumerate(examples):
      for k, v in example.items():
        batch[k][row] = v
    batch["valid"] = (np.arange(batch_size) < len(chunk)).astype(np.float32)
    yield batch, chunk


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
  return max(1, num_examples // global_batch_size)
