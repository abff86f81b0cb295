"""grain input pipelines: a `Dataset` in, per-process numpy batches out.

Training: shard by process -> shuffle (reshuffled every epoch) -> repeat -> decode -> augment ->
batch -> prefetch (threads, or worker processes if `worker_count` > 0). It is a grain
`DatasetIterator`, so its position goes into every checkpoint and a resumed run continues with
exactly the batches an uninterrupted run would have seen.
Evaluation: every example exactly once, in order, the last batch padded and marked by `valid`.
"""

import functools
import math
import sys

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
  if data_config.name.startswith("multimodal"):
    return functools.partial(drop_modalities, rate=config.modality_dropout)
  if data_config.name in SPEECH_CORPORA:
    augment_lib.validate_speech(config)
    return functools.partial(augment_lib.augment_speech, data_config=data_config)
  augment_lib.validate(config)
  return functools.partial(augment_face, config=config)


def augment_face(example: dict, rng: np.random.Generator, config: ml_collections.ConfigDict) -> dict:
  """An image (and its landmarks, moved with it), or every frame of a clip with the same draw."""
  if "clip" not in example:
    image = decode(example, ("image",))["image"]
    image, points = augment_lib.augment_image_and_points(image, example.get("landmarks"), rng, config)
    return {**example, "image": image, **({} if points is None else {"landmarks": points})}
  seed = rng.integers(2**32)
  frames = decode(example, ("clip",))["clip"]
  return {**example, "clip": np.stack([augment_lib.augment_image(f, np.random.default_rng(seed), config)
                                       for f in frames])}


def drop_modalities(example: dict, rng: np.random.Generator, rate: float) -> dict:
  """Training-time modality dropout: each present modality is hidden with probability `rate`, one always kept."""
  if not 0 <= rate < 1:
    raise ValueError(f"config.data.augment.modality_dropout={rate} must be in [0, 1).")
  present = np.asarray(example["present"], np.float32)
  kept = present * (rng.random(present.shape) >= rate)
  if kept.sum() == 0:
    kept[rng.choice(np.flatnonzero(present))] = 1.0
  return {**example, "present": kept}


def per_process_batch_size(global_batch_size: int) -> int:
  processes = jax.process_count()
  if global_batch_size % processes:
    raise ValueError(f"config.train.batch_size={global_batch_size} must be divisible by the number of "
                     f"processes ({processes}).")
  return global_batch_size // processes


# ----------------------------------------------------------------------------------------------
# Token sequences: each batch is cut to its longest row (rounded up), and training batches can be
# grouped by length, so a 12-token comment does not pay for 128 tokens of padding.
# ----------------------------------------------------------------------------------------------
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def trim_padding(batch: dict, multiple: int = 16) -> dict:
  """Cuts token arrays to the batch's longest row rounded up to `multiple` (few shapes -> few compilations).

  Token arrays may carry a modality prefix (`text_input_ids` with `text_attention_mask`, in fusion tuples).
  Multi-process runs keep the full width: every process must feed the same global array shape.
  """
  if jax.process_count() > 1:
    return batch
  for mask_key in [k for k in batch if k.endswith("attention_mask")]:
    prefix = mask_key[:-len("attention_mask")]
    longest = int(np.asarray(batch[mask_key]).sum(-1).max(initial=1))
    width = min(-(-longest // multiple) * multiple, batch[mask_key].shape[-1])
    batch = {k: (v[:, :width] if k.removeprefix(prefix) in TOKEN_KEYS and k.startswith(prefix) else v)
             for k, v in batch.items()}
  return batch


def has_tokens(dataset: Dataset) -> bool:
  return any(k.endswith("attention_mask") for k in dataset.model_inputs)


class LengthGroupedShuffle(grain.MapDataset):
  """An endless reshuffle (new order every epoch) in which neighbouring rows have similar lengths.

  Each epoch: a seeded permutation, cut into windows of `window_batches` batches, each window sorted by
  length, its batches in a seeded random order. Batching this dataset then gives length-homogeneous batches
  that still change every epoch. Index -> row is a pure function of (seed, index), so the iterator's
  position checkpoints and resumes like any grain dataset.
  """

  def __init__(self, parent: grain.MapDataset, lengths: np.ndarray, batch_size: int, window_batches: int, seed: int):
    super().__init__(parent)
    if len(lengths) != len(parent):
      raise ValueError(f"{len(lengths)} lengths for {len(parent)} rows.")
    self._lengths, self._batch_size, self._window, self._seed = np.asarray(lengths), batch_size, window_batches, seed
    # One (epoch, order) tuple, replaced whole: grain's reader threads never pair one epoch with another's order.
    self._cache = (None, None)

  def __len__(self) -> int:
    return sys.maxsize  # endless, like repeat(None)

  def _order(self, epoch: int) -> np.ndarray:
    cached_epoch, cached_order = self._cache
    if epoch == cached_epoch:
      return cached_order
    rng = np.random.default_rng([self._seed, epoch])
    permutation = rng.permutation(len(self._lengths))
    window = self._batch_size * self._window
    order = []
    for start in range(0, len(permutation), window):
      rows = permutation[start:start + window]
      rows = rows[np.argsort(self._lengths[rows], kind="stable")]
      batches = [rows[i:i + self._batch_size] for i in range(0, len(rows), self._batch_size)]
      order.extend(batches[i] for i in rng.permutation(len(batches)))
    order = np.concatenate(order)
    self._cache = (epoch, order)
    return order

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    epoch, position = divmod(index, len(self._lengths))
    return self._parent[int(self._order(epoch)[position])]


class ProcessSlice(grain.MapDataset):
  """This process's rows of each global batch of an endless dataset: with P processes and global batch G, row r of
  the process's stream is row (r // (G/P)) * G + process * (G/P) + r % (G/P) of the global stream. Every process
  shuffles (and augments, by global position) the same global stream, so P processes train on exactly the
  batches one process would, and a run's loss curve does not depend on how many processes share it."""

  def __init__(self, parent: grain.MapDataset, global_batch_size: int, process_index: int, process_count: int):
    super().__init__(parent)
    self._per_process = global_batch_size // process_count
    self._global, self._offset = global_batch_size, process_index * self._per_process

  def __len__(self) -> int:
    return sys.maxsize  # endless, like its parent

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    batch, row = divmod(index, self._per_process)
    return self._parent[batch * self._global + self._offset + row]


def train_iterator(dataset: Dataset, config: ml_collections.ConfigDict, seed: int,
                   start_batch: int = 0) -> grain.DatasetIterator:
  """An endless, deterministic iterator of this process's part of each global training batch, from global batch
  `start_batch` on. Batch b is a pure function of (seed, b) (shuffles and augmentation are seeded by position), so
  resuming at step b needs only b: no iterator state is saved, and a run may resume on another number of
  processes."""
  augment = make_augmenter(config.data)
  batch_size = per_process_batch_size(config.train.batch_size)
  ds = grain.MapDataset.source(dataset)
  if "attention_mask" in dataset.arrays and config.data.get("bucket_by_length", False):
    # Whole-epoch length sort would make every batch's length predictable; windows keep it random.
    lengths = np.asarray(dataset.arrays["attention_mask"]).sum(-1)
    ds = LengthGroupedShuffle(ds, lengths, config.train.batch_size, config.data.bucket_window_batches, seed)
  else:
    ds = ds.shuffle(seed=seed).repeat(None)
  if augment is not None:
    ds = ds.random_map(augment, seed=seed + 1)
  if jax.process_count() > 1:
    ds = ProcessSlice(ds, config.train.batch_size, jax.process_index(), jax.process_count())
  ds = ds.map(functools.partial(decode, keys=dataset.model_inputs))
  ds = ds.batch(batch_size, drop_remainder=True)
  if has_tokens(dataset):
    ds = ds.map(functools.partial(trim_padding, multiple=config.data.get("pad_to_multiple", 16)))
  if start_batch:
    ds = ds[start_batch:]
  iter_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=config.data.read_threads,
                                                 prefetch_buffer_size=config.data.prefetch))
  if config.data.worker_count > 0:
    iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.data.worker_count))
  return iter(iter_ds)


def eval_batches(dataset: Dataset, global_batch_size: int, pad_to_multiple: int = 16):
  """Yields (batch, indices): every example once, padded to full batches with `valid` = 0.

  Every process yields the same number of batches (multi-host collectives need that), each from
  its own slice of the data. Token sequences go shortest first and each batch is trimmed to its
  longest row (the indices say where each row belongs).
  """
  batch_size = per_process_batch_size(global_batch_size)
  indices = np.arange(len(dataset))[jax.process_index()::jax.process_count()]
  if "attention_mask" in dataset.arrays:
    indices = indices[np.argsort(np.asarray(dataset.arrays["attention_mask"])[indices].sum(-1), kind="stable")]
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
    yield trim_padding(batch, pad_to_multiple), chunk


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
  return max(1, num_examples // global_batch_size)
