"""Per-example image augmentation for 48x48 faces, driven by a numpy Generator.

grain's `random_map` hands each example a Generator seeded from (seed, example position), so
augmentation is reproducible and a resumed run draws the same transforms as an uninterrupted one.
Crop, flip and rotation are folded into one affine resampling to keep the cost to one pass.
"""

import ml_collections
import numpy as np
from scipy import ndimage


def validate(config: ml_collections.ConfigDict) -> None:
  checks = {
    "crop_padding": config.crop_padding >= 0,
    "rotation_degrees": 0 <= config.rotation_degrees <= 180,
    "contrast": 0 <= config.contrast < 1,
    "brightness": 0 <= config.brightness < 1,
    "random_erasing": 0 <= config.get("random_erasing", 0.0) <= 1,
  }
  for field, ok in checks.items():
    if not ok:
      raise ValueError(
        f"config.data.augment.{field}={config[field]} is out of range "
        "(crop_padding >= 0, rotation_degrees in [0, 180], contrast and brightness in [0, 1), "
        "random_erasing in [0, 1])."
      )


def augment_image(image: np.ndarray, rng: np.random.Generator, config: ml_collections.ConfigDict) -> np.ndarray:
  """float32 [H, W, C] in [0, 1] -> augmented float32 [H, W, C] in [0, 1]."""
  return augment_image_and_points(image, None, rng, config)[0]


def augment_image_and_points(image: np.ndarray, points, rng: np.random.Generator, config: ml_collections.ConfigDict):
  """`augment_image`, also moving landmarks `points` [P, 2] (x, y as fractions of the image) with the image.

  A mirrored face's points keep their indices (the left eye's point now lies on the right): the landmark
  graph models have no per-point identity, and the FaceMesh tessellation is mirror-symmetric.
  """
  height, width = image.shape[:2]
  angle = np.deg2rad(rng.uniform(-config.rotation_degrees, config.rotation_degrees))
  flip = -1.0 if config.flip and rng.random() < 0.5 else 1.0
  shift = rng.integers(-config.crop_padding, config.crop_padding + 1, size=2)
  if angle or flip < 0 or shift.any():
    matrix, offset = warp_matrix_and_offset(angle, flip, shift, height, width)
    image = np.stack(
      [
        ndimage.affine_transform(image[..., c], matrix, offset=offset, order=1, mode="nearest")
        for c in range(image.shape[-1])
      ],
      axis=-1,
    )
    if points is not None:
      points = move_points(points, matrix, offset, height, width).astype(np.float32)
  if config.contrast:
    mean = image.mean()
    image = (image - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
  if config.brightness:
    image = image + rng.uniform(-config.brightness, config.brightness)
  image = np.clip(image, 0.0, 1.0)
  if config.get("random_erasing", 0.0) and rng.random() < config.random_erasing:
    image = random_erase(image, rng)
  return image.astype(np.float32), points


def warp_matrix_and_offset(angle, flip, shift, height: int, width: int, xp=np):
  """The one affine warp that crops, flips and rotates: output pixel o = (row, col) samples the input at
  matrix @ o + offset = matrix @ (o - center) + center + shift (ndimage.affine_transform's convention).

  `angle` is in radians, `flip` is -1 (mirror left-right) or 1, `shift` the (row, col) crop shift: a random
  crop of a padded image is the same as a shift with edge replication. `xp` is numpy or jax.numpy, so the
  host path here and the on-device path (emojax.data.device_augment) share one definition of the warp.
  """
  cos, sin = xp.cos(angle), xp.sin(angle)
  matrix = xp.array([[cos, -sin], [sin, cos]]) @ xp.diag(xp.array([1.0, flip]))
  center = xp.array([(height - 1) / 2, (width - 1) / 2])
  offset = center + shift - matrix @ center
  return matrix, offset


def move_points(points, matrix, offset, height: int, width: int, xp=np):
  """Landmarks [P, 2] ((x, y) fractions of the image) moved with the warp of `warp_matrix_and_offset`.

  (x, y) fractions -> (row, col) pixel centres p -> the output pixel o with matrix @ o + offset = p, i.e.
  o = matrix^T (p - offset): the matrix is orthogonal (a rotation times a flip), so its inverse is its transpose.
  """
  rows_cols = xp.stack([points[:, 1] * height - 0.5, points[:, 0] * width - 0.5], axis=-1)
  moved = (rows_cols - offset) @ matrix
  return xp.stack([(moved[:, 1] + 0.5) / width, (moved[:, 0] + 0.5) / height], axis=-1)


def random_erase(image: np.ndarray, rng: np.random.Generator, area=(0.02, 0.33), aspect=(0.3, 3.3)) -> np.ndarray:
  """Random erasing (Zhong et al., 2020): one rectangle of 2-33% of the image, aspect ratio 0.3-3.3 (log-uniform),
  filled with uniform noise, so the model cannot rely on any single facial region."""
  height, width = image.shape[:2]
  for _ in range(10):  # a drawn rectangle that does not fit is redrawn
    target = rng.uniform(*area) * height * width
    ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
    h, w = int(round(np.sqrt(target * ratio))), int(round(np.sqrt(target / ratio)))
    if 0 < h < height and 0 < w < width:
      top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
      image = image.copy()
      image[top : top + h, left : left + w] = rng.random((h, w) + image.shape[2:])
      return image
  return image


# ----------------------------------------------------------------------------------------------
# Speech: waveform transforms (re-featurised per example, or prepared once as K feature copies that training
# picks from), and SpecAugment masks on the features.
# ----------------------------------------------------------------------------------------------
def validate_speech(config: ml_collections.ConfigDict) -> None:
  checks = {
    "probability": 0 <= config.probability <= 1,
    "pitch_shift_semitones": 0 <= config.pitch_shift_semitones <= 12,
    "time_stretch": 0 <= config.time_stretch < 1,
    "snr_db_high": config.snr_db_low <= config.snr_db_high,
    "gain_db": config.gain_db >= 0,
    **{field: config[field] >= 0 for field in ("time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins")},
  }
  for field, ok in checks.items():
    if not ok:
      raise ValueError(
        f"config.data.augment.{field}={config[field]} is out of range (probability in [0, 1], "
        "pitch_shift_semitones in [0, 12], time_stretch in [0, 1), snr_db_low <= snr_db_high, "
        "gain_db, mask counts and widths >= 0)."
      )


def pitch_shift(wave: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
  """Same length and rate, pitch moved by `semitones` (phase vocoder + resampling)."""
  import librosa

  return librosa.effects.pitch_shift(wave, sr=sample_rate, n_steps=semitones, res_type="soxr_hq").astype(np.float32)


def time_stretch(wave: np.ndarray, rate: float) -> np.ndarray:
  """Same pitch, duration divided by `rate` (rate > 1 is faster)."""
  import librosa

  return librosa.effects.time_stretch(wave, rate=rate).astype(np.float32)


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
  """Adds white Gaussian noise scaled so that signal power / noise power = 10^(snr_db / 10)."""
  noise = rng.standard_normal(len(wave)).astype(np.float32)
  signal_power = float(np.mean(wave.astype(np.float64) ** 2))
  noise *= np.sqrt(signal_power / (10 ** (snr_db / 10)) / max(float(np.mean(noise.astype(np.float64) ** 2)), 1e-12))
  return (wave + noise).astype(np.float32)


def spec_augment(
  features: np.ndarray,
  num_frames: int,
  rng: np.random.Generator,
  config: ml_collections.ConfigDict,
  spectral_dims: int,
  band_blocks: int = 1,
) -> np.ndarray:
  """SpecAugment (Park et al., 2019) without time warping: masks random time spans and frequency bands.

  Masks cover valid frames and spectral dims only (prosody dims beyond `spectral_dims` stay) and
  are filled with the utterance's mean of each dim, so a masked region carries no information and
  no outlier level either. With `band_blocks` = 3 (MFCCs with deltas and delta-deltas) a frequency
  mask covers the same coefficients in every block.
  """
  features = features.copy()
  mean = features[:num_frames, :spectral_dims].mean(0)
  for _ in range(config.time_masks):
    width = int(rng.integers(0, min(config.time_mask_frames, num_frames) + 1))
    start = int(rng.integers(0, num_frames - width + 1))
    features[start : start + width, :spectral_dims] = mean
  block = spectral_dims // band_blocks
  for _ in range(config.freq_masks):
    width = int(rng.integers(0, min(config.freq_mask_bins, block) + 1))
    start = int(rng.integers(0, block - width + 1))
    for offset in range(0, spectral_dims, block):
      band = slice(offset + start, offset + start + width)
      features[:num_frames, band] = mean[band]
  return features


def augment_waveform(
  wave: np.ndarray, sample_rate: int, rng: np.random.Generator, config: ml_collections.ConfigDict
) -> tuple[np.ndarray, bool]:
  """Pitch shift, time stretch, noise and gain, each applied with `config.probability`: (wave, whether any was)."""
  changed = False
  if config.pitch_shift_semitones > 0 and rng.random() < config.probability:
    wave, changed = pitch_shift(wave, sample_rate, rng.uniform(-1, 1) * config.pitch_shift_semitones), True
  if config.time_stretch > 0 and rng.random() < config.probability:
    wave, changed = time_stretch(wave, rng.uniform(1 - config.time_stretch, 1 + config.time_stretch)), True
  if config.add_noise and rng.random() < config.probability:
    wave, changed = add_noise(wave, rng.uniform(config.snr_db_low, config.snr_db_high), rng), True
  if config.gain_db > 0 and rng.random() < config.probability:
    wave, changed = wave * np.float32(10 ** (rng.uniform(-1, 1) * config.gain_db / 20)), True
  return wave, changed


def waveform_change_probability(config: ml_collections.ConfigDict) -> float:
  """The chance that `augment_waveform` changes a wave at all: 1 - (1 - probability)^(enabled transforms).

  Training on feature copies uses a copy with this probability, and every copy has at least one transform
  (`augmented_copy`), so an example sees each transform as often as `augment_waveform` applies it per example:
  turning copies on changes how many distinct draws a file gets, not how strong the augmentation is.
  """
  enabled = sum([config.pitch_shift_semitones > 0, config.time_stretch > 0, bool(config.add_noise), config.gain_db > 0])
  return 1.0 - (1.0 - config.probability) ** enabled if enabled else 0.0


def augmented_copy(
  wave: np.ndarray, sample_rate: int, rng: np.random.Generator, config: ml_collections.ConfigDict
) -> np.ndarray:
  """One feature copy's waveform: `augment_waveform` redrawn until at least one transform applies.

  A copy equal to the clean clip would only lower the rate of augmented examples; conditioning on a change
  keeps that rate at `waveform_change_probability` (the chance of using a copy) and each transform's share
  within the augmented examples at what the per-example path gives.
  """
  if waveform_change_probability(config) == 0:
    raise ValueError(
      "config.data.augment has no waveform transform to make copies with (probability > 0 and one "
      "of pitch_shift_semitones, time_stretch, add_noise, gain_db is needed)."
    )
  while True:
    out, changed = augment_waveform(wave, sample_rate, rng, config)
    if changed:
      return out


def pick_feature_copies(key, batch: dict, probability: float) -> dict:
  """The device pipeline's copy choice: each row takes a uniformly chosen one of its K augmented feature copies
  with `probability` (pass `waveform_change_probability(config.data.augment)`, as the host path uses), else keeps
  its clean features.

  `batch`: `features` [B, T, D], `num_frames` [B], `augmented_features` [B, K, T, D], `augmented_num_frames` [B, K]
  (jnp or numpy). Returns the batch with `features` and `num_frames` replaced and the two augmented keys removed,
  ready for SpecAugment and the model. Pure jnp, so it runs under `jax.jit` on sharded batches.
  """
  import jax
  import jax.numpy as jnp

  batch = dict(batch)
  copies, copy_frames = batch.pop("augmented_features"), batch.pop("augmented_num_frames")
  rows, count = copies.shape[:2]
  use_key, index_key = jax.random.split(key)
  use = jax.random.uniform(use_key, (rows,)) < probability
  index = jax.random.randint(index_key, (rows,), 0, count)
  picked = jnp.take_along_axis(copies, index[:, None, None, None], axis=1)[:, 0]
  picked_frames = jnp.take_along_axis(copy_frames, index[:, None], axis=1)[:, 0]
  batch["features"] = jnp.where(use[:, None, None], picked.astype(batch["features"].dtype), batch["features"])
  batch["num_frames"] = jnp.where(use, picked_frames.astype(batch["num_frames"].dtype), batch["num_frames"])
  return batch
