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
      raise ValueError(f"config.data.augment.{field}={config[field]} is out of range "
                       "(crop_padding >= 0, rotation_degrees in [0, 180], contrast and brightness in [0, 1), "
                       "random_erasing in [0, 1]).")


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
    # Output pixel o maps to input pixel matrix @ (o - center) + center + shift; a random crop of a
    # padded image is the same as a shift with edge replication.
    cos, sin = np.cos(angle), np.sin(angle)
    matrix = np.array([[cos, -sin], [sin, cos]]) @ np.diag([1.0, flip])
    center = np.array([(height - 1) / 2, (width - 1) / 2])
    offset = center + shift - matrix @ center
    image = np.stack([
        ndimage.affine_transform(image[..., c], matrix, offset=offset, order=1, mode="nearest")
        for c in range(image.shape[-1])
    ], axis=-1)
    if points is not None:  # (x, y) fractions -> (row, col) pixel centres -> o = matrix^T (p - offset)
      rows_cols = np.stack([points[:, 1] * height - 0.5, points[:, 0] * width - 0.5], axis=-1)
      moved = (rows_cols - offset) @ matrix  # orthogonal (a rotation times a flip): inverse = transpose
      points = np.stack([(moved[:, 1] + 0.5) / width, (moved[:, 0] + 0.5) / height], axis=-1).astype(np.float32)
  if config.contrast:
    mean = image.mean()
    image = (image - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
  if config.brightness:
    image = image + rng.uniform(-config.brightness, config.brightness)
  image = np.clip(image, 0.0, 1.0)
  if config.get("random_erasing", 0.0) and rng.random() < config.random_erasing:
    image = random_erase(image, rng)
  return image.astype(np.float32), points


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
      image[top:top + h, left:left + w] = rng.random((h, w) + image.shape[2:])
      return image
  return image


# ----------------------------------------------------------------------------------------------
# Speech: waveform transforms (then re-featurised), and SpecAugment masks on the features.
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
      raise ValueError(f"config.data.augment.{field}={config[field]} is out of range (probability in [0, 1], "
                       "pitch_shift_semitones in [0, 12], time_stretch in [0, 1), snr_db_low <= snr_db_high, "
                       "gain_db, mask counts and widths >= 0).")


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


def spec_augment(features: np.ndarray, num_frames: int, rng: np.random.Generator,
                 config: ml_collections.ConfigDict, spectral_dims: int, band_blocks: int = 1) -> np.ndarray:
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
    features[start:start + width, :spectral_dims] = mean
  block = spectral_dims // band_blocks
  for _ in range(config.freq_masks):
    width = int(rng.integers(0, min(config.freq_mask_bins, block) + 1))
    start = int(rng.integers(0, block - width + 1))
    for offset in range(0, spectral_dims, block):
      band = slice(offset + start, offset + start + width)
      features[:num_frames, band] = mean[band]
  return features


def augment_speech(example: dict, rng: np.random.Generator, data_config: ml_collections.ConfigDict) -> dict:
  """One training example's augmentation: waveform transforms, re-featurisation, SpecAugment."""
  from emojax.data import features as features_lib  # speech-only dependency (librosa)
  config, rate = data_config.augment, data_config.audio.sample_rate
  example = dict(example)
  if "audio" in example:
    wave = example["audio"][:example["length"]]
    changed = False
    if config.pitch_shift_semitones > 0 and rng.random() < config.probability:
      wave, changed = pitch_shift(wave, rate, rng.uniform(-1, 1) * config.pitch_shift_semitones), True
    if config.time_stretch > 0 and rng.random() < config.probability:
      wave, changed = time_stretch(wave, rng.uniform(1 - config.time_stretch, 1 + config.time_stretch)), True
    if config.add_noise and rng.random() < config.probability:
      wave, changed = add_noise(wave, rng.uniform(config.snr_db_low, config.snr_db_high), rng), True
    if config.gain_db > 0 and rng.random() < config.probability:
      wave, changed = wave * np.float32(10 ** (rng.uniform(-1, 1) * config.gain_db / 20)), True
    if changed:
      max_samples = len(example["audio"])
      wave = wave[:max_samples]
      audio = np.zeros(max_samples, np.float32)
      audio[:len(wave)] = wave
      example.update(audio=audio, length=np.int32(len(wave)))
      if data_config.input == "features":
        frames = features_lib.frame_features(wave, rate, data_config.features)
        padded = np.zeros_like(example["features"])
        padded[:len(frames)] = frames[:len(padded)]
        example.update(features=padded, num_frames=np.int32(min(len(frames), len(padded))))
  if data_config.input == "features" and (config.time_masks or config.freq_masks):
    settings = data_config.features
    blocks = 3 if settings.kind == "mfcc" and settings.deltas else 1
    example["features"] = spec_augment(example["features"], int(example["num_frames"]), rng, config,
                                       features_lib.spectral_dim(settings), blocks)
  return example
