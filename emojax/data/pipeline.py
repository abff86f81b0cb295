"""grain input pipelines: a `Dataset` in, per-process numpy batches out.

Training: the endless stream order (a pure function of (seed, epoch), shared with the on-device pipeline in
`device_pipeline.py`) -> augment -> this process's slice -> decode -> batch -> prefetch (threads, or worker
processes if `worker_count` > 0). Batch s is a function of (seed, s) alone, so a resumed run continues with exactly
the batches an uninterrupted run would have seen.
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

AUGMENTATION_ONLY = ("augmented_features", "augmented_num_frames")  # speech copies, consumed by augmentation


def decode(example: dict, keys=("image", "label")) -> dict:
  """Keeps the model inputs `keys` (a dataset's `model_inputs`); uint8 images -> float32 in [0, 1]. Inputs that
  only augmentation reads (`AUGMENTATION_ONLY`) may already be gone."""
  out = {}
  for key in keys:
    if key in AUGMENTATION_ONLY and key not in example:
      continue
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
    from emojax.data import features as features_lib  # speech-only dependency (librosa)

    return functools.partial(features_lib.augment_speech, data_config=data_config)
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
  return {
    **example,
    "clip": np.stack([augment_lib.augment_image(f, np.random.default_rng(seed), config) for f in frames]),
  }


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
    raise ValueError(
      f"config.train.batch_size={global_batch_size} must be divisible by the number of processes ({processes})."
    )
  return global_batch_size // processes


# ----------------------------------------------------------------------------------------------
# Token sequences: each batch is cut to the smallest of a few fixed widths that holds its longest row, so a
# 12-token comment does not pay for 128 tokens of padding and a run compiles one step per width, not per batch.
# ----------------------------------------------------------------------------------------------
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_TOKEN_WIDTHS = (32, 64, 128)


def token_width(longest: int, full_width: int, widths=DEFAULT_TOKEN_WIDTHS) -> int:
  """The smallest of `widths` that holds `longest` tokens, capped at the arrays' `full_width`."""
  if not widths or any(int(w) <= 0 for w in widths):
    raise ValueError(
      f"config.data.token_widths={tuple(widths)} must be a non-empty list of positive widths, e.g. (32, 64, 128)."
    )
  fitting = [int(w) for w in sorted(widths) if int(w) >= longest]
  return min(fitting[0] if fitting else full_width, full_width)


def token_mask_keys(keys) -> list[str]:
  return [k for k in keys if k.endswith("attention_mask")]


def trim_padding(batch: dict, widths=DEFAULT_TOKEN_WIDTHS, width: int | None = None) -> dict:
  """Cuts token arrays to `width`, by default the smallest of `widths` holding the batch's longest row.

  Token arrays may carry a modality prefix (`text_input_ids` with `text_attention_mask`, in fusion tuples).
  Multi-process grain runs keep the full width: every process must feed the same global array shape, and each
  sees only its slice of the batch (the on-device pipeline knows the global batch and trims there too).
  """
  if jax.process_count() > 1 and width is None:
    return batch
  for mask_key in token_mask_keys(batch):
    prefix = mask_key[: -len("attention_mask")]
    full = batch[mask_key].shape[-1]
    cut = (
      width if width is not None else token_width(int(np.asarray(batch[mask_key]).sum(-1).max(initial=1)), full, widths)
    )
    batch = {
      k: (v[:, :cut] if k.removeprefix(prefix) in TOKEN_KEYS and k.startswith(prefix) else v) for k, v in batch.items()
    }
  return batch


def has_tokens(dataset: Dataset) -> bool:
  return bool(token_mask_keys(dataset.model_inputs))


def token_lengths(dataset: Dataset) -> np.ndarray | None:
  """Per-row token counts (the longest of the row's token fields), or None for a dataset without tokens."""
  masks = token_mask_keys(dataset.arrays)
  if not masks:
    return None
  return np.max([np.asarray(dataset.arrays[k]).sum(-1) for k in masks], axis=0)


# ----------------------------------------------------------------------------------------------
# The training stream: position i of the endless stream holds row order(epoch)[i % N], epoch = i // N. The
# order is a pure function of (seed, epoch); the grain and on-device pipelines both read it, so with the same
# seed they train on the same batches, and batch s is a function of (seed, s) alone.
# ----------------------------------------------------------------------------------------------
class StreamOrder:
  """Each epoch's row order: a seeded permutation, or (`lengths` given) a length-grouped one, in which the
  permutation is cut into windows of `window_batches` batches, each window sorted by length and its batches put
  in a seeded random order. Batching then gives batches of similar lengths that still change every epoch
  (a whole-epoch length sort would make every batch's length predictable)."""

  def __init__(self, num_rows: int, seed: int, lengths=None, batch_size: int = 0, window_batches: int = 0):
    if lengths is not None and len(lengths) != num_rows:
      raise ValueError(f"{len(lengths)} lengths for {num_rows} rows.")
    if lengths is not None and (batch_size < 1 or window_batches < 1):
      raise ValueError(
        f"Length-grouped order needs batch_size >= 1 and config.data.bucket_window_batches >= 1, "
        f"got {batch_size} and {window_batches}."
      )
    self.num_rows, self.seed = num_rows, seed
    self._lengths = None if lengths is None else np.asarray(lengths)
    self._batch_size, self._window = batch_size, window_batches
    # One (epoch, order) tuple, replaced whole: grain's reader threads never pair one epoch with another's order.
    self._cache = (None, None)

  def epoch(self, epoch: int) -> np.ndarray:
    cached_epoch, cached_order = self._cache
    if epoch == cached_epoch:
      return cached_order
    rng = np.random.default_rng([self.seed, epoch])
    order = rng.permutation(self.num_rows)
    if self._lengths is not None:
      window = self._batch_size * self._window
      grouped = []
      for start in range(0, len(order), window):
        rows = order[start : start + window]
        rows = rows[np.argsort(self._lengths[rows], kind="stable")]
        batches = [rows[i : i + self._batch_size] for i in range(0, len(rows), self._batch_size)]
        grouped.extend(batches[i] for i in rng.permutation(len(batches)))
      order = np.concatenate(grouped)
    self._cache = (epoch, order)
    return order

  def rows(self, start: int, count: int) -> np.ndarray:
    """The rows at stream positions [start, start + count)."""
    positions = np.arange(start, start + count, dtype=np.int64)
    epochs, within = np.divmod(positions, self.num_rows)
    out = np.empty(count, np.int64)
    for epoch in np.unique(epochs):
      chosen = epochs == epoch
      out[chosen] = self.epoch(int(epoch))[within[chosen]]
    return out


def stream_order(dataset: Dataset, config: ml_collections.ConfigDict, seed: int) -> StreamOrder:
  """The training order the config asks for: length-grouped for token data with `data.bucket_by_length`."""
  lengths = token_lengths(dataset) if config.data.get("bucket_by_length", False) else None
  return StreamOrder(len(dataset), seed, lengths, config.train.batch_size, config.data.get("bucket_window_batches", 0))


class OrderedStream(grain.MapDataset):
  """The endless stream of `order` over `parent`'s rows, as a grain dataset (index -> row is a pure function of
  (seed, index), so the iterator needs no saved state to resume)."""

  def __init__(self, parent: grain.MapDataset, order: StreamOrder):
    super().__init__(parent)
    self._order = order

  def __len__(self) -> int:
    return sys.maxsize  # endless, like repeat(None)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    epoch, position = divmod(index, self._order.num_rows)
    return self._parent[int(self._order.epoch(epoch)[position])]


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


def train_iterator(
  dataset: Dataset, config: ml_collections.ConfigDict, seed: int, start_batch: int = 0
) -> grain.DatasetIterator:
  """An endless, deterministic iterator of this process's part of each global training batch, from global batch
  `start_batch` on. Batch b is a pure function of (seed, b) (shuffles and augmentation are seeded by position), so
  resuming at step b needs only b: no iterator state is saved, and a run may resume on another number of
  processes."""
  augment = make_augmenter(config.data)
  batch_size = per_process_batch_size(config.train.batch_size)
  ds = OrderedStream(grain.MapDataset.source(dataset), stream_order(dataset, config, seed))
  if augment is not None:
    ds = ds.random_map(augment, seed=seed + 1)
  if jax.process_count() > 1:
    ds = ProcessSlice(ds, config.train.batch_size, jax.process_index(), jax.process_count())
  ds = ds.map(functools.partial(decode, keys=dataset.model_inputs))
  ds = ds.batch(batch_size, drop_remainder=True)
  if has_tokens(dataset):
    ds = ds.map(functools.partial(trim_padding, widths=token_widths(config.data)))
  if start_batch:
    ds = ds[start_batch:]
  iter_ds = ds.to_iter_dataset(
    grain.ReadOptions(num_threads=config.data.read_threads, prefetch_buffer_size=config.data.prefetch)
  )
  if config.data.worker_count > 0:
    iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.data.worker_count))
  return iter(iter_ds)


def token_widths(data_config: ml_collections.ConfigDict) -> tuple[int, ...]:
  return tuple(data_config.get("token_widths", DEFAULT_TOKEN_WIDTHS))


class GrainFeed:
  """Host side of the grain path for the training loop: `inputs(step, count)` -> (the next `count` batches stacked
  [count, B, ...] as global arrays split over the batch axes, None). Token batches of one dispatch are padded to
  the widest of them (one of the configured widths), so a dispatch still compiles once per width."""

  def __init__(self, dataset: Dataset, config: ml_collections.ConfigDict, seed: int, start_step: int, mesh):
    from jax.sharding import NamedSharding, PartitionSpec

    from emojax import sharding

    self._iterator = train_iterator(dataset, config, seed=seed, start_batch=start_step)
    self._sharding = NamedSharding(mesh, PartitionSpec(None, sharding.BATCH_AXES))
    self._next_step = start_step

  def inputs(self, step: int, count: int):
    if step != self._next_step:
      raise RuntimeError(f"GrainFeed is at step {self._next_step}, asked for step {step}: it only moves forward.")
    batches = [next(self._iterator) for _ in range(count)]
    self._next_step += count
    stacked = {}
    for key in batches[0]:
      values = [np.asarray(b[key]) for b in batches]
      width = max(v.shape[-1] for v in values) if any(key.endswith(t) for t in TOKEN_KEYS) else None
      if width is not None:
        values = [np.pad(v, [(0, 0)] * (v.ndim - 1) + [(0, width - v.shape[-1])]) for v in values]
      stacked[key] = np.stack(values)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self._sharding, x), stacked), None


def eval_batches(dataset: Dataset, global_batch_size: int, widths=DEFAULT_TOKEN_WIDTHS):
  """Yields (batch, indices): every example once, padded to full batches with `valid` = 0.

  Every process yields the same number of batches (multi-host collectives need that), each from
  its own slice of the data. Token sequences go shortest first and each batch is trimmed to its
  longest row (the indices say where each row belongs).
  """
  batch_size = per_process_batch_size(global_batch_size)
  indices = np.arange(len(dataset))[jax.process_index() :: jax.process_count()]
  lengths = token_lengths(dataset)
  if lengths is not None:
    indices = indices[np.argsort(lengths[indices], kind="stable")]
  num_batches = math.ceil(math.ceil(len(dataset) / jax.process_count()) / batch_size)
  template = decode(dataset[0], dataset.model_inputs)
  for b in range(num_batches):
    chunk = indices[b * batch_size : (b + 1) * batch_size]
    examples = [decode(dataset[i], dataset.model_inputs) for i in chunk]
    batch = {k: np.zeros((batch_size,) + np.shape(v), np.asarray(v).dtype) for k, v in template.items()}
    for row, example in enumerate(examples):
      for k, v in example.items():
        batch[k][row] = v
    batch["valid"] = (np.arange(batch_size) < len(chunk)).astype(np.float32)
    yield trim_padding(batch, widths), chunk


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
  return max(1, num_examples // global_batch_size)
