"""Audio in: any file soundfile reads, any sample rate or channel count -> one mono clip.

`read_audio` decodes and resamples; `prepare_clip` checks the signal, trims leading and trailing
silence and caps the duration (a centre crop); `trimmed_speech` and `sliding_windows` keep a long recording
whole and cut it into clip-sized windows instead (inference). Files that cannot be used raise `BadAudio` with
the reason, which readers turn into a counted, named skip (never a silent drop, never a crash mid-run).
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
  return to_mono(data, source_rate, sample_rate)


def to_mono(samples: np.ndarray, source_rate: int, sample_rate: int) -> np.ndarray:
  """Samples [S] or [S, channels] (soundfile's layout; floats in [-1, 1], or int16 / int32 PCM) at `source_rate`
  -> float32 mono at `sample_rate` (channels averaged, soxr resampling): what `read_audio` does after decoding."""
  samples = np.asarray(samples)
  if samples.ndim not in (1, 2):
    raise BadAudio(f"audio samples are [S] or [S, channels]; got shape {samples.shape}")
  if samples.size == 0:
    raise BadAudio("empty audio (0 samples)")
  if np.issubdtype(samples.dtype, np.integer):
    samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
  elif not np.issubdtype(samples.dtype, np.floating):
    raise BadAudio(f"audio samples of dtype {samples.dtype}; expected floats in [-1, 1] or integer PCM")
  wave = samples.astype(np.float32) if samples.ndim == 1 else samples.astype(np.float32).mean(axis=1)
  if not np.isfinite(wave).all():
    raise BadAudio("contains NaN or infinite samples")
  if int(source_rate) <= 0:
    raise BadAudio(f"sample rate {source_rate} Hz: it must be positive")
  if source_rate != sample_rate:
    wave = librosa.resample(wave, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
  return wave.astype(np.float32)


def prepare_clip(wave: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """Validates and trims a mono wave; returns at most `max_seconds` of speech (centre crop).

  `config` is `config.data.audio`: sample_rate, trim_top_db (0 = no trimming), min_seconds,
  max_seconds, silence_peak (a peak below it is silence), max_clipped_fraction.
  """
  wave = trimmed_speech(wave, config)
  max_samples = max_clip_samples(config)
  if len(wave) > max_samples:  # keep the middle: onsets and releases are the least informative
    start = (len(wave) - max_samples) // 2
    wave = wave[start : start + max_samples]
  return np.ascontiguousarray(wave, dtype=np.float32)


def trimmed_speech(wave: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """The checks of `prepare_clip` (silence, clipping, length) and its silence trimming, without the length cap:
  a long recording stays whole, for `sliding_windows`. Raises `BadAudio` with the reason."""
  rate = config.sample_rate
  peak = float(np.abs(wave).max()) if wave.size else 0.0
  if peak < config.silence_peak:
    raise BadAudio(f"silent (peak amplitude {peak:.2e} < config.data.audio.silence_peak={config.silence_peak})")
  clipped = float(np.mean(np.abs(wave) >= 0.999 * max(peak, 1e-9))) if peak >= 0.999 else 0.0
  if clipped > config.max_clipped_fraction:
    raise BadAudio(
      f"clipped: {clipped:.0%} of samples sit at full scale "
      f"(> config.data.audio.max_clipped_fraction={config.max_clipped_fraction})"
    )
  if config.trim_top_db > 0:
    wave, _ = librosa.effects.trim(wave, top_db=config.trim_top_db, frame_length=512, hop_length=128)
  if len(wave) < config.min_seconds * rate:
    raise BadAudio(
      f"too short: {len(wave) / rate:.2f} s of sound after trimming silence "
      f"(< config.data.audio.min_seconds={config.min_seconds})"
    )
  return np.ascontiguousarray(wave, dtype=np.float32)


def sliding_windows(
  wave: np.ndarray, config: ml_collections.ConfigDict, hop_seconds: float, long_seconds: float
) -> list[tuple[int, int]]:
  """(start, end) sample ranges to score a trimmed recording by. Up to `long_seconds`, one: the clip the readers
  keep (`prepare_clip`'s centre crop of at most `max_seconds`), so a recording of a corpus's length is scored as
  its validation split was. A longer recording is cut into windows of `max_seconds` every `hop_seconds`, the last
  ending at the recording's end, so no sound is left out and every window is a full clip."""
  window = max_clip_samples(config)
  hop = int(round(hop_seconds * config.sample_rate))
  if hop <= 0:
    raise ValueError(f"The sliding-window hop must be positive, got {hop_seconds} s.")
  if len(wave) <= max(window, long_seconds * config.sample_rate):
    start = max(len(wave) - window, 0) // 2
    return [(start, min(start + window, len(wave)))]
  starts = list(range(0, len(wave) - window + 1, hop))
  if starts[-1] + window < len(wave):
    starts.append(len(wave) - window)
  return [(start, start + window) for start in starts]


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
      raise ValueError(
        f"config.data.audio.{field}={config[field]} is out of range (sample_rate >= 4000, "
        "0 < min_seconds <= max_seconds, trim_top_db >= 0, 0 < max_clipped_fraction <= 1)."
      )
