"""Speech features (librosa, openSMILE) and their on-disk cache.

Frame features share one clock, `hop_length` samples per frame with centred frames, so they can
be stacked along the feature axis:
  * `log_mel`: log mel power spectrogram, `n_mels` dims;
  * `mfcc`: `n_mfcc` cepstral coefficients, plus first and second deltas if `deltas`;
  * `prosody` (appended when enabled): log2 pitch relative to 100 Hz (0 when unvoiced), voicing,
    log RMS energy, zero-crossing rate. Pitch comes from pYIN (slow, with voicing probabilities) or
    YIN (fast; voiced where the frame's energy is within 30 dB of the utterance's peak).
Spectral dims can be standardised per utterance (`normalize="utterance"`, prosody dims excepted),
but that erases absolute levels, and it cost the MFCC-statistics SVM on RAVDESS several points of UA
(docs/results_speech.md). The default `"none"` leaves it to the models, which standardise with statistics
of the training frames (`emojax.models.speech.normalized_features`).
`functionals` are openSMILE's eGeMAPS v02 utterance statistics (88 values).

`FeatureCache` keys every entry by the file's bytes and the audio + feature config, so a second
epoch or run reads instead of recomputing, a changed file or config misses, and an interrupted
write leaves no half entry behind (write to a temporary name, then an atomic rename).
Augmented feature copies (`extract_copies`) are cached the same way, their keys adding the copy's
index, seed and waveform-augmentation settings.
"""

import functools
import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import librosa
import ml_collections
import numpy as np

from emojax.data import audio as audio_lib
from emojax.data import augment as augment_lib

CACHE_VERSION = 1  # bump when a feature's definition changes, so old entries are not reused
COPY_VERSION = 1  # bump when the way a copy is drawn (`augment.augmented_copy`) changes
# What a copy depends on beyond the clean clip (not SpecAugment's settings: it runs later, on every draw).
COPY_SETTINGS = (
  "probability",
  "pitch_shift_semitones",
  "time_stretch",
  "add_noise",
  "snr_db_low",
  "snr_db_high",
  "gain_db",
  "feature_copies_seed",
)
PROSODY_DIMS = 4
EGEMAPS_DIMS = 88


def num_frames(num_samples: int, hop_length: int) -> int:
  return 1 + num_samples // hop_length


def spectral_dim(config: ml_collections.ConfigDict) -> int:
  return {"log_mel": config.n_mels, "mfcc": config.n_mfcc * (3 if config.deltas else 1)}[config.kind]


def feature_dim(config: ml_collections.ConfigDict) -> int:
  return spectral_dim(config) + (PROSODY_DIMS if config.prosody else 0)


def validate(config: ml_collections.ConfigDict) -> None:
  if config.kind not in ("log_mel", "mfcc"):
    raise ValueError(f"config.data.features.kind={config.kind!r}; expected 'log_mel' or 'mfcc'.")
  if config.pitch_method not in ("yin", "pyin"):
    raise ValueError(f"config.data.features.pitch_method={config.pitch_method!r}; expected 'yin' or 'pyin'.")
  if config.normalize not in ("utterance", "none"):
    raise ValueError(f"config.data.features.normalize={config.normalize!r}; expected 'utterance' or 'none'.")
  if not 0 < config.hop_length <= config.n_fft:
    raise ValueError(f"config.data.features.hop_length={config.hop_length} must be in (0, n_fft={config.n_fft}].")


def frame_features(wave: np.ndarray, sample_rate: int, config: ml_collections.ConfigDict) -> np.ndarray:
  """float32 mono wave -> float32 [num_frames(len(wave)), feature_dim(config)]."""
  mel = librosa.feature.melspectrogram(
    y=wave,
    sr=sample_rate,
    n_fft=config.n_fft,
    hop_length=config.hop_length,
    n_mels=config.n_mels,
    fmin=config.fmin,
    fmax=config.fmax,
  )
  log_mel = np.log(mel + 1e-6)
  if config.kind == "log_mel":
    spectral = log_mel
  else:
    spectral = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=config.n_mfcc)
    if config.deltas:
      frames = spectral.shape[1]  # >= 9 for clips of min_seconds (speech.load checks); shorter after stretching
      width = min(9, frames if frames % 2 else frames - 1)  # librosa wants an odd width <= the frame count
      spectral = np.concatenate(
        [
          spectral,
          librosa.feature.delta(spectral, width=width, order=1),
          librosa.feature.delta(spectral, width=width, order=2),
        ]
      )
  spectral = spectral.T
  if config.normalize == "utterance":
    spectral = (spectral - spectral.mean(0)) / (spectral.std(0) + 1e-5)
  parts = [spectral]
  if config.prosody:
    parts.append(prosody(wave, sample_rate, config))
  return np.concatenate(parts, axis=1).astype(np.float32)


def prosody(wave: np.ndarray, sample_rate: int, config: ml_collections.ConfigDict) -> np.ndarray:
  """[frames, 4]: log2(f0 / 100 Hz) or 0, voicing in [0, 1], log RMS, zero-crossing rate."""
  hop, frame = config.hop_length, config.pitch_frame_length
  padded = np.pad(wave, (0, max(0, frame - len(wave))))  # pitch trackers need one full frame
  if config.pitch_method == "pyin":
    f0, _, voicing = librosa.pyin(
      padded, fmin=config.pitch_fmin, fmax=config.pitch_fmax, sr=sample_rate, frame_length=frame, hop_length=hop
    )
    f0 = np.nan_to_num(f0, nan=0.0)
  else:
    f0 = librosa.yin(
      padded, fmin=config.pitch_fmin, fmax=config.pitch_fmax, sr=sample_rate, frame_length=frame, hop_length=hop
    )
  rms = librosa.feature.rms(y=wave, frame_length=config.n_fft, hop_length=hop)[0]
  zcr = librosa.feature.zero_crossing_rate(wave, frame_length=config.n_fft, hop_length=hop)[0]
  frames = num_frames(len(wave), hop)
  f0 = _fit(f0, frames)
  if config.pitch_method == "yin":
    voicing = (20 * np.log10(rms + 1e-9) > 20 * np.log10(rms.max() + 1e-9) - 30).astype(np.float32)
  voicing = _fit(voicing, frames)
  log_f0 = np.where((f0 > 0) & (voicing > 0.5), np.log2(np.maximum(f0, 1e-3) / 100.0), 0.0)
  return np.stack([log_f0, voicing, np.log(rms + 1e-5), zcr], axis=1).astype(np.float32)


def _fit(values: np.ndarray, frames: int) -> np.ndarray:
  values = np.asarray(values, np.float32)[:frames]
  return np.pad(values, (0, frames - len(values)), mode="edge") if len(values) < frames else values


@functools.cache
def _egemaps_extractor():
  import opensmile  # imported on first use: only the eGeMAPS paths need it

  return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)


def functionals(wave: np.ndarray, sample_rate: int) -> np.ndarray:
  """openSMILE eGeMAPS v02 functionals: 88 utterance-level prosodic, voice-quality and spectral stats."""
  values = _egemaps_extractor().process_signal(wave, sample_rate).to_numpy()[0]
  return np.nan_to_num(values.astype(np.float32))


# ----------------------------------------------------------------------------------------------
# One file -> cached arrays.
# ----------------------------------------------------------------------------------------------
def extract(path: str | os.PathLike, data_config: ml_collections.ConfigDict, cache: "FeatureCache | None") -> dict:
  """Reads, checks and featurises one file: {"audio": clip, "features": [frames, D], "functionals"?}.

  Raises `audio.BadAudio` for files that cannot be used.
  """
  content = Path(path).read_bytes()
  if cache is not None:
    hit = cache.get(content)
    if hit is not None:
      return hit
  rate = data_config.audio.sample_rate
  # Decoded from the bytes that were hashed, so the entry always describes what it is keyed by.
  clip = audio_lib.prepare_clip(audio_lib.read_audio(io.BytesIO(content), rate), data_config.audio)
  arrays = {"audio": clip, **clip_features(clip, data_config)}
  if cache is not None:
    cache.put(content, arrays)
  return arrays


def clip_features(clip: np.ndarray, data_config: ml_collections.ConfigDict) -> dict:
  """A prepared clip's features: {"features": [frames, D], "functionals"?: [88], "whisper_summary"?, "whisper_frames"?}
  (what `extract` caches; inference featurises each window of a recording with it)."""
  rate = data_config.audio.sample_rate
  arrays = {"features": frame_features(clip, rate, data_config.features)}
  if data_config.features.egemaps:
    arrays["functionals"] = functionals(clip, rate)
  if data_config.features.get("whisper", ""):  # the frozen Whisper encoder's summaries (data/whisper_features.py)
    arrays.update(whisper_summaries(clip, data_config))
  return arrays


def extract_copies(
  path: str | os.PathLike,
  clip: np.ndarray,
  data_config: ml_collections.ConfigDict,
  count: int,
  cache: "FeatureCache | None",
) -> list[dict]:
  """`count` augmented copies of one file's frame features: [{"features": [frames, D]}, ...].

  Copy k is the clean `clip` (what `extract` returned for `path`) put through `augment.augmented_copy` with a
  Generator seeded by (`augment.feature_copies_seed`, the file's content hash, k), cut to the clip length cap
  and featurised like the clean features (prosody too, when configured). So a copy is a pure function of its
  cache key: reloading, another thread count or a moved corpus give the same copies, and raising K keeps
  copies 0..K-1. eGeMAPS functionals are not recomputed per copy: they stay the clean clip's, as they do under
  per-example augmentation, which re-featurises frames only.
  """
  content = Path(path).read_bytes()
  settings = data_config.augment
  identity = int.from_bytes(hashlib.blake2b(content, digest_size=16).digest(), "little")
  rate, max_samples = data_config.audio.sample_rate, audio_lib.max_clip_samples(data_config.audio)
  copies = []
  for copy in range(count):
    variant = json.dumps(
      {"copy": copy, "version": COPY_VERSION, **{k: settings.get(k, 0) for k in COPY_SETTINGS}}, sort_keys=True
    ).encode()
    arrays = cache.get(content, variant) if cache is not None else None
    if arrays is None:
      rng = np.random.default_rng([settings.get("feature_copies_seed", 0), identity, copy])
      wave = augment_lib.augmented_copy(clip, rate, rng, settings)[:max_samples]
      arrays = {"features": frame_features(wave, rate, data_config.features)}
      if cache is not None:
        cache.put(content, arrays, variant)
    copies.append(arrays)
  return copies


def whisper_summaries(wave: np.ndarray, data_config) -> dict:
  """`whisper_features.encoder_summaries` of a prepared clip with the settings of `config.data.features`, through a
  cache of their own.

  Keyed by the clip's samples (already decoded, trimmed and cut by the audio settings) and the Whisper settings
  only, in `<config.data.cache_dir>/whisper/`, so switching log-mel, prosody or eGeMAPS settings, which makes new
  feature-cache entries, does not run the encoder again. No cache_dir: computed every time.
  """
  from emojax.data import whisper_features  # the Whisper encoder: only for configs that ask for it

  window, layer = data_config.features.whisper, whisper_features.frames_layer(data_config.features)
  if not data_config.get("cache_dir", ""):
    return whisper_features.encoder_summaries(wave, window, layer)
  cache = FeatureCache(
    Path(data_config.cache_dir) / "whisper",
    ml_collections.ConfigDict(
      {
        "audio": {},
        "features": {"window": window, "frames_from_layer": layer, "version": whisper_features.SUMMARY_VERSION},
      }
    ),
  )
  content = np.ascontiguousarray(wave, np.float32).tobytes()
  arrays = cache.get(content)
  if arrays is None:
    arrays = whisper_features.encoder_summaries(wave, window, layer)
    cache.put(content, arrays)
  return arrays


class FeatureCache:
  """`<directory>/<2 hex>/<key>.npz`, key = blake2b(audio + feature config, version, variant, file bytes).

  `variant` (empty for the clean features) names what else an entry depends on, e.g. which augmented copy.
  """

  def __init__(self, directory: str | os.PathLike, data_config: ml_collections.ConfigDict):
    self.directory = Path(directory).expanduser()
    settings = {
      "audio": data_config.audio.to_dict(),
      "features": data_config.features.to_dict(),
      "version": CACHE_VERSION,
    }
    self._salt = json.dumps(settings, sort_keys=True).encode()
    self.hits = self.misses = 0

  def _path(self, content: bytes, variant: bytes) -> Path:
    # The salt is one JSON object, so salt + "\n" + variant cannot be read as another salt.
    digest = hashlib.blake2b(self._salt + (b"\n" + variant if variant else b""), digest_size=20)
    digest.update(content)
    key = digest.hexdigest()
    return self.directory / key[:2] / f"{key}.npz"

  def get(self, content: bytes, variant: bytes = b"") -> dict | None:
    path = self._path(content, variant)
    if not path.is_file():
      self.misses += 1
      return None
    try:
      with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
      # Entries are renamed into place complete, so this is outside damage: recompute it.
      logging.warning("Feature cache entry %s is unreadable (%s); recomputing it.", path, error)
      path.unlink(missing_ok=True)
      self.misses += 1
      return None
    self.hits += 1
    return arrays

  def put(self, content: bytes, arrays: dict, variant: bytes = b"") -> None:
    path = self._path(content, variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
      with os.fdopen(handle, "wb") as f:
        np.savez(f, **arrays)
      os.replace(temporary, path)  # atomic: readers see the old state or the whole entry
    except BaseException:
      Path(temporary).unlink(missing_ok=True)
      raise


def augment_speech(example: dict, rng: np.random.Generator, data_config: ml_collections.ConfigDict) -> dict:
  """One training example's augmentation: the waveform branch, then SpecAugment.

  The waveform branch picks a prepared copy when the example carries `augmented_features` (a uniformly chosen
  one of its K copies with `waveform_change_probability`, else the clean features; the augmented arrays are then
  dropped, so batches carry only what the model reads), and otherwise transforms the waveform and re-featurises it
  here, on the host, per example.
  """
  config, rate = data_config.augment, data_config.audio.sample_rate
  example = dict(example)
  if "augmented_features" in example:
    copies, copy_frames = example.pop("augmented_features"), example.pop("augmented_num_frames")
    if rng.random() < augment_lib.waveform_change_probability(config):
      copy = int(rng.integers(len(copies)))
      example.update(features=copies[copy], num_frames=np.int32(copy_frames[copy]))
  elif "audio" in example:
    wave, changed = augment_lib.augment_waveform(example["audio"][: example["length"]], rate, rng, config)
    if changed:
      max_samples = len(example["audio"])
      wave = wave[:max_samples]
      audio = np.zeros(max_samples, np.float32)
      audio[: len(wave)] = wave
      example.update(audio=audio, length=np.int32(len(wave)))
      if data_config.input == "features":
        frames = frame_features(wave, rate, data_config.features)
        padded = np.zeros_like(example["features"])
        padded[: len(frames)] = frames[: len(padded)]
        example.update(features=padded, num_frames=np.int32(min(len(frames), len(padded))))
  if data_config.input == "features" and (config.time_masks or config.freq_masks):
    settings = data_config.features
    blocks = 3 if settings.kind == "mfcc" and settings.deltas else 1
    example["features"] = augment_lib.spec_augment(
      example["features"], int(example["num_frames"]), rng, config, spectral_dim(settings), blocks
    )
  return example
