"""Audio in: any file soundfile reads, any sample rate or channel count -> one mono clip.

`read_audio` decodes and resamples; `prepare_clip` checks the signal, trims leading and trailing
silence and caps the duration. Files that cannot be used raise `BadAudio` with the reason, which
readers turn into a counted, named skip (never a silent drop, never a crash mid-run).
"""

import io
import os

import librosa
import ml_collections
import numpy as np
import soundfile

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


class BadAudio(ValueError):
  """A file that decodes to nothing usable: unreadable, empty, silent, clipped or too short."""


def read_audio(source: str | os.PathLike | io.BytesIO, sample_rate: int) -> np.ndarray:
  """Decodes a path or in-memory file to float32 mono at `sample_rate` (channels averaged, soxr resampling)."""
  try:
    data, source_rate = soundfile.read(source, dtype="float32", always_2d=True)
  except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as error:
    raise BadAudio(f"unreadable audio ({error})") from error
  if data.size == 0:
    raise BadAudio("empty file (0 samples)")
  wave = data.mean(axis=1)
  if not np.isfinite(wave).all():
    raise BadAudio("contains NaN or infinite samples")
  if source_rate != sample_rate:
    wave = librosa.resample(wave, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
  return wave.astype(np.float32)


def prepare_clip(wave: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """Validates and trims a mono wave; returns at most `max_seconds` of speech (centre crop).

  `config` is `config.data.audio`: sample_rate, trim_top_db (0 = no trimming), min_seconds,
  max_seconds, silence_peak (a peak below it is silence), max_clipped_fraction.
  """
  rate = config.sample_rate
  peak = float(np.abs(wave).max()) if wave.size else 0.0
  if peak < config.silence_peak:
    raise BadAudio(f"silent (peak amplitude {peak:.2e} < config.data.audio.silence_peak={config.silence_peak})")
  clipped = float(np.mean(np.abs(wave) >= 0.999 * max(peak, 1e-9))) if peak >= 0.999 else 0.0
  if clipped > config.max_clipped_fraction:
    raise BadAudio(f"clipped: {clipped:.0%} of samples sit at full scale "
                   f"(> config.data.audio.max_clipped_fraction={config.max_clipped_fraction})")
  if config.trim_top_db > 0:
    wave, _ = librosa.effects.trim(wave, top_db=config.trim_top_db, frame_length=512, hop_length=128)
  if len(wave) < config.min_seconds * rate:
    raise BadAudio(f"too short: {len(wave) / rate:.2f} s of sound after trimming silence "
                   f"(< config.data.audio.min_seconds={config.min_seconds})")
  max_samples = max_clip_samples(config)
  if len(wave) > max_samples:  # keep the middle: onsets and releases are the least informative
    start = (len(wave) - max_samples) // 2
    wave = wave[start:start + max_samples]
  return np.ascontiguousarray(wave, dtype=np.float32)


def max_clip_samples(config: ml_collections.ConfigDict) -> int:
  return int(round(config.max_seconds * config.sample_rate))


def validate(config: ml_collections.ConfigDict) -> None:
  checks = {
      "sample_rate": config.sample_rate >= 4000,
      "min_seconds": 0 < config.min_seconds <= config.max_seconds,
      "max_seconds": config.max_seconds > 0,
      "trim_top_db": config.trim_top_db >= 0,
      "max_clipped_fraction": 0 < config.max_clipped_fraction <= 1,
  }
  for field, ok in checks.items():
    if not ok:
      raise ValueError(f"config.data.audio.{field}={config[field]} is out of range (sample_rate >= 4000, "
                       "0 < min_seconds <= max_seconds, trim_top_db >= 0, 0 < max_clipped_fraction <= 1).")
