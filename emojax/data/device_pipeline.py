"""On-device datasets: a split goes to the accelerators once, and every step gathers its batch there.

The grain pipeline (`pipeline.py`) decodes and augments each example on the host and sends every batch to the
devices, which keeps a fast chip waiting on a few host threads. Datasets that fit in device memory (FER2013 as
uint8 48x48 images is 66 MB, speech features from the cache, tokenized GoEmotions, fusion exports and tuples)
need none of that: `DeviceData` puts a split's model inputs on the devices once, the host sends only the row
indices of the coming steps ([k, B] int32), and the jitted step gathers, decodes and augments the batch on device
(`device_augment.py`).

The row indices are those of the grain path (`pipeline.StreamOrder`: a pure function of (seed, epoch)), so with
augmentation off both paths train on the same batches, batch s is a function of (seed, s) alone, a resumed run
continues bit-identically, and every process of a multi-process run computes the same global indices and gathers
its own devices' rows.

Layout: every array is replicated on every device rather than sharded over the batch axes. A step's rows are a
random subset of the whole split, so a split sharded by rows would need an all-to-all exchange of rows every
step; replicated, each device gathers its batch rows locally. The price is one copy of the split per device,
which `config.data.device_max_bytes` bounds (above it, "auto" falls back to grain).
"""

import logging
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from emojax import sharding
from emojax.data import SPEECH_CORPORA, pipeline
from emojax.data.base import Dataset

PIPELINES = ("auto", "device", "grain")
UINT8_TO_UNIT = np.arange(256, dtype=np.float32) / 255.0  # exactly `pipeline.decode`'s values


# ----------------------------------------------------------------------------------------------
# Which pipeline a run uses.
# ----------------------------------------------------------------------------------------------
def unsupported_reason(dataset: Dataset, data_config: ml_collections.ConfigDict, training: bool = True) -> str | None:
  """Why `dataset` cannot go through the device pipeline under `data_config` (for training, with its augmentation,
  or only for evaluation), or None when it can."""
  augment = data_config.get("augment", ml_collections.ConfigDict({"enabled": False}))
  if training and data_config.name in SPEECH_CORPORA and augment.enabled:
    if data_config.get("input", "features") == "waveform":
      return (
        "waveform augmentation (pitch, stretch, noise on raw audio) runs on the host; use "
        "config.data.input='features' or config.data.augment.enabled=False"
      )
    waveform_augmentation = augment.get("probability", 0.0) > 0 and (
      augment.pitch_shift_semitones > 0 or augment.time_stretch > 0 or augment.add_noise or augment.gain_db > 0
    )
    if waveform_augmentation and "augmented_features" not in dataset.arrays:
      return (
        "waveform augmentations re-featurise audio on the host; set config.data.augment.feature_copies > 0 "
        "(augmented copies prepared once into the feature cache) or config.data.augment.probability=0"
      )
  limit = data_config.get("device_max_bytes", 4 * 2**30)
  if device_bytes(dataset) > limit:
    return (
      f"the split's model inputs take {device_bytes(dataset) / 2**20:.0f} MiB per device, above "
      f"config.data.device_max_bytes={limit}"
    )
  return None


def resolve(dataset: Dataset, data_config: ml_collections.ConfigDict, training: bool = True) -> str:
  """ "device" or "grain" for `config.data.pipeline` ("auto": device where it applies, else grain, logged).
  `dataset` is the training split, or the evaluation split of a run that only evaluates (`training=False`)."""
  choice = data_config.get("pipeline", "auto")
  if choice not in PIPELINES:
    raise ValueError(f"config.data.pipeline={choice!r}; choose one of {PIPELINES}.")
  if choice == "grain":
    return "grain"
  reason = unsupported_reason(dataset, data_config, training)
  if reason is None:
    return "device"
  if choice == "device":
    raise ValueError(f"config.data.pipeline='device' does not apply: {reason}. Or use config.data.pipeline='grain'.")
  logging.info("Input pipeline: grain (host), because %s.", reason)
  return "grain"


def device_bytes(dataset: Dataset) -> int:
  arrays = source_arrays(dataset)
  return int(sum(np.asarray(v).nbytes for v in arrays.values()))


# ----------------------------------------------------------------------------------------------
# A split on the devices.
# ----------------------------------------------------------------------------------------------
def source_arrays(dataset: Dataset) -> dict:
  """The numpy arrays the device needs: the model inputs, or for fusion tuples (`TupleDataset`, which
  assembles each example from its modalities' own datasets) the tuple columns plus each modality's inputs,
  stored once however often the pairing reuses a row."""
  sources = getattr(dataset, "sources", None)
  if not sources:
    return {k: np.asarray(dataset.arrays[k]) for k in dataset.model_inputs}
  arrays = {k: np.asarray(dataset.arrays[k]) for k in ("label", "present")}
  for m, source in sources.items():
    arrays[f"{m}_row"] = np.asarray(dataset.arrays[f"{m}_row"], np.int32)
    for key in dataset.input_keys[m]:
      arrays[f"{m}/{key}"] = np.asarray(source.arrays[key])
  return arrays


class DeviceData:
  """A split's inputs on every device of `mesh`, with what the host needs to index it."""

  def __init__(self, dataset: Dataset, mesh):
    self.dataset, self.mesh = dataset, mesh
    self.num_rows = len(dataset)
    self.lengths = pipeline.token_lengths(dataset)
    self.tuple_keys = (
      {m: tuple(dataset.input_keys[m]) for m in dataset.sources} if getattr(dataset, "sources", None) else None
    )
    replicated = sharding.replicated(mesh)
    # From a callback, so each process fills its own devices (multi-host) from the split it has in memory.
    self.arrays = {
      k: jax.make_array_from_callback(v.shape, replicated, lambda index, v=v: v[index])
      for k, v in source_arrays(dataset).items()
    }
    self.nbytes = sum(int(np.prod(v.shape)) * v.dtype.itemsize for v in self.arrays.values())

  def width(self, rows: np.ndarray, widths) -> int | None:
    """The token width of a dispatch over `rows` (one of `widths`), or None for a dataset without tokens."""
    if self.lengths is None:
      return None
    full = max(v.shape[-1] for k, v in self.arrays.items() if is_token_array(k))
    return pipeline.token_width(int(self.lengths[rows].max(initial=1)), full, widths)

  def rows_array(self, rows: np.ndarray) -> jax.Array:
    """Host row indices [..., B] -> a global int32 array split over the batch axes on its last dimension."""
    rows = np.asarray(rows, np.int32)
    spec = PartitionSpec(*([None] * (rows.ndim - 1)), sharding.BATCH_AXES)
    return jax.make_array_from_callback(rows.shape, NamedSharding(self.mesh, spec), lambda index: rows[index])


def gather(arrays: dict, rows: jax.Array, width: int | None, tuple_keys=None) -> dict:
  """Traced: the batch at `rows` [B] of a `DeviceData`'s arrays, decoded like `pipeline.decode` (uint8 -> float32
  in [0, 1]) and token arrays cut to `width`."""

  def take(key, value, index):
    if width is not None and is_token_array(key):
      value = value[:, :width]
    out = jnp.take(value, index, axis=0)
    # A table lookup, not a division: XLA turns x / 255 into a multiplication, one ulp away from the host's
    # decode, and the two pipelines would drift apart over a run.
    return jnp.asarray(UINT8_TO_UNIT)[out] if out.dtype == jnp.uint8 else out

  if tuple_keys is None:
    return {k: take(k, v, rows) for k, v in arrays.items()}
  batch = {k: jnp.take(arrays[k], rows, axis=0) for k in ("label", "present")}
  for m, keys in tuple_keys.items():
    row = jnp.take(arrays[f"{m}_row"], rows, axis=0)
    for key in keys:
      value = take(key, arrays[f"{m}/{key}"], jnp.maximum(row, 0))
      absent = (row < 0).reshape((-1,) + (1,) * (value.ndim - 1))
      batch[f"{m}_{key}"] = jnp.where(absent, jnp.zeros_like(value), value)  # as TupleDataset: zeros if absent
  return batch


def is_token_array(key: str) -> bool:
  return any(key.endswith(k) for k in pipeline.TOKEN_KEYS)


# ----------------------------------------------------------------------------------------------
# Training: the indices of the coming steps, and the traced batch preparation.
# ----------------------------------------------------------------------------------------------
class DeviceFeed:
  """Host side of the device path: `inputs(step, count)` -> ([count, B] row indices, static token width)."""

  def __init__(self, data: DeviceData, config: ml_collections.ConfigDict, seed: int):
    self.data = data
    self.order = pipeline.stream_order(data.dataset, config, seed)
    self.batch_size = config.train.batch_size
    self.widths = pipeline.token_widths(config.data)

  def inputs(self, step: int, count: int):
    rows = self.order.rows(step * self.batch_size, count * self.batch_size).reshape(count, self.batch_size)
    return self.data.rows_array(rows), self.data.width(rows, self.widths)


def make_prepare(data: DeviceData, augmenter, mesh):
  """Traced `prepare(arrays, rows [B], step, width) -> batch`: gather, decode, augment with a key of the step."""

  def prepare(arrays, rows, step, width, augment_key):
    batch = gather(arrays, rows, width, data.tuple_keys)
    batch = jax.lax.with_sharding_constraint(batch, sharding.batch_sharding(mesh))
    if augmenter is not None:
      batch = augmenter(jax.random.fold_in(augment_key, step), batch)
    return batch

  return prepare


# ----------------------------------------------------------------------------------------------
# Evaluation on device: every example once, token batches shortest first, each cut to its width.
# ----------------------------------------------------------------------------------------------
def make_eval_step(predict_step, data: DeviceData):
  """A jitted (variables, arrays, rows [B], width) -> outputs: gather on device, then `predict_step`."""
  return jax.jit(
    lambda variables, arrays, rows, width: predict_step(variables, gather(arrays, rows, width, data.tuple_keys)),
    static_argnums=3,
  )


def predict(eval_step, variables, data: DeviceData, batch_size: int, widths) -> dict:
  """`prediction.predict` for a split on the devices: numpy outputs in dataset order. Every process runs the same
  global batches (padding rows repeat row 0 and are dropped), so outputs need no re-ordering across processes."""
  order = np.arange(data.num_rows)
  if data.lengths is not None:
    order = order[np.argsort(data.lengths, kind="stable")]
  num_batches = math.ceil(data.num_rows / batch_size)
  chunks = []
  for b in range(num_batches):
    rows = order[b * batch_size : (b + 1) * batch_size]
    padded = np.zeros(batch_size, np.int64)
    padded[: len(rows)] = rows
    outputs = eval_step(variables, data.arrays, data.rows_array(padded), data.width(rows, widths))
    outputs = jax.tree.map(lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), outputs)
    chunks.append({k: v[: len(rows)] for k, v in outputs.items()})
  outputs = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  inverse = np.empty_like(order)
  inverse[order] = np.arange(len(order))
  return {k: v[inverse] for k, v in outputs.items()}


# ----------------------------------------------------------------------------------------------
# Augmentation on device: the counterpart of `pipeline.make_augmenter`, on a whole batch.
# ----------------------------------------------------------------------------------------------
def drop_modalities(key, present: jax.Array, rate: float) -> jax.Array:
  """`pipeline.drop_modalities` on a batch: each present modality hidden with probability `rate`, one kept."""
  drop_key, keep_key = jax.random.split(key)
  present = present.astype(jnp.float32)
  kept = present * (jax.random.uniform(drop_key, present.shape) >= rate)
  # Where everything was dropped, one of the present modalities (uniformly) comes back.
  chosen = jax.nn.one_hot(
    jnp.argmax(present * jax.random.uniform(keep_key, present.shape, minval=0.1), -1), present.shape[-1]
  )
  restore = (kept.sum(-1, keepdims=True) == 0) & (present.sum(-1, keepdims=True) > 0)
  return jnp.where(restore, chosen, kept)


def make_batch_mixer(data_config: ml_collections.ConfigDict, num_classes: int):
  """Traced mixup / cutmix over a whole face batch (`device_augment.mix_batch`), or None when off. The grain path
  uses it too: mixing needs the batch, so it runs on device whichever pipeline fed it."""
  from emojax.data import device_augment

  config = data_config.get("augment", ml_collections.ConfigDict({"enabled": False}))
  if not config.enabled or not (config.get("mixup_alpha", 0.0) or config.get("cutmix_alpha", 0.0)):
    return None
  return lambda key, batch: device_augment.mix_batch(key, batch, config, num_classes)


def make_augmenter(data_config: ml_collections.ConfigDict, num_classes: int):
  """Traced `augment(key, batch) -> batch` for the config's modality, or None when augmentation is off."""
  from emojax.data import augment as augment_lib
  from emojax.data import device_augment

  config = data_config.augment
  if not config.enabled:
    return None
  if data_config.name.startswith("multimodal"):
    rate = config.modality_dropout
    if not 0 <= rate < 1:
      raise ValueError(f"config.data.augment.modality_dropout={rate} must be in [0, 1).")
    return lambda key, batch: {**batch, "present": drop_modalities(key, batch["present"], rate)}
  if data_config.name in SPEECH_CORPORA:
    from emojax.data import features as features_lib

    augment_lib.validate_speech(config)
    settings = data_config.features
    spectral_dims = features_lib.spectral_dim(settings)
    blocks = 3 if settings.kind == "mfcc" and settings.deltas else 1

    def augment_speech(key, batch):
      copy_key, mask_key = jax.random.split(key)
      if "augmented_features" in batch:
        batch = augment_lib.pick_feature_copies(copy_key, batch, augment_lib.waveform_change_probability(config))
      if config.time_masks or config.freq_masks:
        batch = {
          **batch,
          "features": device_augment.spec_augment(
            mask_key, batch["features"], batch["num_frames"], config, spectral_dims, blocks
          ),
        }
      return batch

    return augment_speech
  device_augment.validate(config)

  def augment_faces(key, batch):
    face_key, mix_key = jax.random.split(key)
    return device_augment.mix_batch(mix_key, device_augment.augment_faces(face_key, batch, config), config, num_classes)

  return augment_faces
