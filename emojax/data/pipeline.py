"""grain input pipelines: a `Dataset` in, per-process numpy batches out.

Training: shard by process -> shuffle (reshuffled every epoch) -> repeat -> decode -> augment ->
batch -> prefetch (threads, or worker processes if `worker_count` > 0). It is a grain
`DatasetIterator`, so its position goes into every checkpoint and a resumed run continues with
exactly the batches an uninterrupted run would have seen.
Evaluation: every example exactly once, in order, the last batch padded and marked by `valid`.
"""

import functools
import math

import grain
import jax
import ml_collections
import numpy as np

from emojax.data import SPEECH_CORPORA
from emojax.data import augment as augment_lib
from emojax.data.base import Dataset


def decode(example: dict, keys=("image", "label")) -> dict:
  """Keeps the model inputs `keys` (a dataset's `model_inputs`); uint8 images -> float32 in [0, 1]."""
  out = {}
  for key in keys:
    value = np.asarray(example[key])
    out[key] = value.astype(np.float32) / 255.0 if value.dtype == np.uint8 else value
  return out


def make_augmenter(data_config: ml_collections.ConfigDict):
  """The per-example training augmentation of the config's modality, or None when disabled."""
  config = data_config.augment
  if not config.enabled:
    return None
  if data_config.name in SPEECH_CORPORA:
    augment_lib.validate_speech(config)
    return functools.partial(augment_lib.augment_speech, data_config=data_config)
  augment_lib.validate(config)
  return lambda ex, rng: {**ex, "image": augment_lib.augment_image(decode(ex, ("image",))["image"], rng, config)}


def per_process_batch_size(global_batch_size: int) -> int:
  processes = jax.process_count()
  if global_batch_size % processes:
    raise ValueError(f"config.train.batch_size={global_batch_size} must be divisible by the number of "
                     f"processes ({processes}).")
  return global_batch_size // processes


def train_iterator(dataset: Dataset, config: ml_collections.ConfigDict, seed: int) -> grain.DatasetIterator:
  """An endless, deterministic, checkpointable iterator of training batches."""
  augment = make_augmenter(config.data)
  ds = grain.MapDataset.source(dataset)[jax.process_index()::jax.process_count()]
  ds = ds.shuffle(seed=seed).repeat(None)
  if augment is not None:
    ds = ds.random_map(augment, seed=seed + 1)
  ds = ds.map(functools.partial(decode, keys=dataset.model_inputs))
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
  template = decode(dataset[0], dataset.model_inputs)
  for b in range(num_batches):
    chunk = indices[b * batch_size:(b + 1) * batch_size]
    examples = [decode(dataset[i], dataset.model_inputs) for i in chunk]
    batch = {k: np.zeros((batch_size,) + np.shape(v), np.asarray(v).dtype) for k, v in template.items()}
    for row, example in enumerate(examples):
      for k, v in example.items():
        batch[k][row] = v
    batch["valid"] = (np.arange(batch_size) < len(chunk)).astype(np.float32)
    yield batch, chunk


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
  return max(1, num_examples // global_batch_size)
