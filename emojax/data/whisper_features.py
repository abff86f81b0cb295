"""Whisper's 80-bin log-mel front end in numpy, and the frozen Whisper encoder's per-clip summaries.

`whisper_log_mel` reproduces OpenAI's `whisper.audio.log_mel_spectrogram` (and faster-whisper's numpy
`FeatureExtractor`): 16 kHz audio, 25 ms periodic Hann windows every 10 ms with reflect-padded centring, the power
spectrum without its last frame, Slaney-normalised mel filters from 0 to 8 kHz (librosa's `filters.mel`, the
filters Whisper ships), log10 floored at 1e-10, then clamped to 8 decades below the clip's peak and mapped by
(x + 4) / 4. tests/test_whisper.py checks it against faster-whisper's extractor.

`encoder_summaries` runs the frozen Flax encoder (`emojax.models.whisper`) over a clip and keeps, for every
hidden state, the mean and the standard deviation over the clip's positions: [num_layers + 1, 2 * hidden]. That
is what the frozen speech-emotion head learns from (`models/speech.WhisperClassifier`), cached per clip in the
feature cache like eGeMAPS functionals: a frozen pretrained encoder is used here as a feature extractor, the one
place where data code runs a model, because re-running a 20 M-parameter encoder every epoch on a CPU would cost
~100x the head's training. With `frames_from_layer` = k it also keeps the hidden state entering layer k per
position, for fine-tuning the layers above it.
"""

import functools

import librosa
import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
NUM_MEL_BINS = 80
WINDOW_SECONDS = 30  # Whisper's training window: 3000 frames, 1500 encoder positions
WINDOWS = ("clip", "30s")
SUMMARY_VERSION = 1  # bump when what `encoder_summaries` returns changes, so cached summaries are not reused
BUCKET_FRAMES = 100  # clips are padded (and masked) to whole seconds: one compiled encoder per second of length


@functools.cache
def mel_filters(num_mel_bins: int = NUM_MEL_BINS) -> np.ndarray:
  """[num_mel_bins, N_FFT // 2 + 1] Slaney-scale, Slaney-normalised filters (what Whisper's mel_filters.npz holds)."""
  return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=num_mel_bins, htk=False, norm="slaney").astype(
    np.float32
  )


def num_frames(num_samples: int) -> int:
  """Log-mel frames of `num_samples` samples (Whisper drops the STFT's last frame): num_samples // 160."""
  return num_samples // HOP_LENGTH


def whisper_log_mel(wave: np.ndarray, pad_to_seconds: float = 0, num_mel_bins: int = NUM_MEL_BINS) -> np.ndarray:
  """float32 [frames, num_mel_bins] Whisper log-mel of a 16 kHz mono wave.

  `pad_to_seconds=30` appends silence up to Whisper's 30 s window before the transform (as Whisper's transcribe
  does), giving 3000 frames; 0 keeps the clip's own length (len(wave) // 160 frames). A wave longer than the
  padding target is an error: cut it into windows first.
  """
  wave = np.asarray(wave, np.float32)
  if wave.ndim != 1 or len(wave) < N_FFT // 2 + 1:
    raise ValueError(
      f"Whisper's log-mel needs a mono wave of at least {N_FFT // 2 + 1} samples; got shape {wave.shape}."
    )
  if pad_to_seconds:
    target = int(round(pad_to_seconds * SAMPLE_RATE))
    if len(wave) > target:
      raise ValueError(
        f"A {len(wave) / SAMPLE_RATE:.2f} s wave does not fit the {pad_to_seconds} s window; cut it into windows first."
      )
    wave = np.pad(wave, (0, target - len(wave)))
  padded = np.pad(wave, N_FFT // 2, mode="reflect")
  count = 1 + (len(padded) - N_FFT) // HOP_LENGTH
  frames = np.lib.stride_tricks.as_strided(padded, (count, N_FFT), (padded.strides[0] * HOP_LENGTH, padded.strides[0]))
  window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann, as torch.hann_window
  power = np.abs(np.fft.rfft(frames * window, axis=-1).astype(np.complex64)[:-1]) ** 2
  log_mel = np.log10(np.maximum(power @ mel_filters(num_mel_bins).T, 1e-10))
  log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
  return ((log_mel + 4.0) / 4.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# The frozen encoder as a feature extractor.
# ----------------------------------------------------------------------------------------------
@functools.cache
def _encoder(folder: str, frames_from_layer: int):
  import jax  # imported on first use: only the Whisper feature paths need the encoder
  import jax.numpy as jnp

  from emojax.models import whisper

  config, params = whisper.load_whisper_encoder(folder)
  model = whisper.WhisperEncoder(config)
  params = jax.device_put(params)  # an argument of the jitted function, not constants compiled into each bucket

  @jax.jit
  def encode(params, features, num_frames, positions):
    """Statistics over the first `positions` positions of each hidden state; the frames entering a layer.

    `features` is padded to a bucket of BUCKET_FRAMES (one compiled program per bucket, not per clip length);
    `num_frames` hides the padding from attention, which leaves the real positions as they were unpadded.
    """
    states = model.apply({"params": params}, features[None], num_frames[None])["hidden_states"]
    stacked = jnp.stack(states, axis=1)[0]  # [L + 1, T, H]
    weights = (jnp.arange(stacked.shape[1]) < positions).astype(jnp.float32)[None, :, None] / positions
    mean = (stacked * weights).sum(axis=1)
    deviation = jnp.sqrt((jnp.square(stacked - mean[:, None]) * weights).sum(axis=1))
    return jnp.concatenate([mean, deviation], axis=-1), states[max(frames_from_layer, 0)][0]

  return config, functools.partial(encode, params)


def encoder_summaries(wave: np.ndarray, window: str = "clip", frames_from_layer: int = -1, folder: str = "") -> dict:
  """The frozen Whisper encoder's view of one 16 kHz clip (at most 30 s).

  Returns {"whisper_summary": float32 [num_layers + 1, 2 * hidden]}: per hidden state, its mean then standard
  deviation over the positions that cover the clip; and with `frames_from_layer` = k >= 0 also
  "whisper_frames": float16 [positions, hidden], the hidden state that enters layer k (k = 0: the conv stem's).
  `window="clip"` encodes the clip's own frames (positional table cut to them); `"30s"` pads the audio to
  Whisper's 30 s window, encodes all 1500 positions, and summarises only those covering the clip.
  `folder`: a CTranslate2 Whisper folder; "" = the installed Whisper base.
  """
  if window not in WINDOWS:
    raise ValueError(
      f"config.data.features.whisper={window!r}; expected 'clip' (the clip's own frames, positions "
      "cut) or '30s' (padded to Whisper's 30 s window)."
    )
  config, run = _encoder(folder, frames_from_layer)
  if not -1 <= frames_from_layer < config.num_layers:
    raise ValueError(
      f"frames_from_layer={frames_from_layer} must be -1 (none) or a layer in [0, "
      f"{config.num_layers}) (config.data.features.whisper_top_layers counts them from the top)."
    )
  features = whisper_log_mel(wave, WINDOW_SECONDS if window == "30s" else 0, config.num_mel_bins)
  positions = (num_frames(len(wave)) + 1) // 2
  frames_count = len(features) if window == "clip" else WINDOW_SECONDS * SAMPLE_RATE // HOP_LENGTH
  bucket = min(-(-len(features) // BUCKET_FRAMES) * BUCKET_FRAMES, config.max_frames)
  features = np.pad(features, ((0, bucket - len(features)), (0, 0)))
  summary, frames = run(features, np.int32(frames_count), np.int32(positions))
  arrays = {"whisper_summary": np.asarray(summary, np.float32)}
  if frames_from_layer >= 0:
    arrays["whisper_summary"] = arrays["whisper_summary"][: frames_from_layer + 1]  # the layers above are trained
    arrays["whisper_frames"] = np.asarray(frames, np.float16)[:positions]
  return arrays


# ----------------------------------------------------------------------------------------------
# The reader's side: settings in config.data.features, arrays per split.
# ----------------------------------------------------------------------------------------------
# config.data.features.whisper: "" (off), "clip" or "30s" (the window); whisper_top_layers: n > 0 also keeps the
# frames entering the encoder's top n layers, which the model then fine-tunes. Both live in `features`, so the
# feature cache's key covers them; configs add them only when used, so other configs' cache keys stay as they were.
def frames_layer(features_config) -> int:
  """The layer whose input frames are kept (`whisper_top_layers` from the top), or -1 when none are."""
  top = int(features_config.get("whisper_top_layers", 0))
  if top <= 0:
    return -1
  from emojax.models import whisper

  num_layers = whisper.load_whisper_encoder()[0].num_layers
  if top > num_layers:
    raise ValueError(f"config.data.features.whisper_top_layers={top}, but the Whisper encoder has {num_layers} layers.")
  return num_layers - top


def model_inputs(features_config) -> tuple[str, ...]:
  """The arrays the Whisper settings add to a speech batch."""
  if not features_config.get("whisper", ""):
    return ()
  return ("whisper_summary",) + (
    ("whisper_frames", "whisper_num_frames") if features_config.get("whisper_top_layers", 0) > 0 else ()
  )


def max_positions(data_config) -> int:
  """Encoder positions of the longest clip the audio settings keep (3 s -> 150)."""
  from emojax.data import audio as audio_lib

  return (num_frames(audio_lib.max_clip_samples(data_config.audio)) + 1) // 2


def stacked(kept: list[dict], data_config) -> dict[str, np.ndarray]:
  """The split's Whisper arrays from each clip's: summaries [N, S, 2H]; frames padded to the clip cap's positions
  [N, P, H] (float16) with their counts [N]."""
  if not data_config.features.get("whisper", ""):
    return {}
  arrays = {"whisper_summary": np.stack([a["whisper_summary"] for a in kept]).astype(np.float32)}
  if "whisper_frames" in kept[0]:
    width, limit = kept[0]["whisper_frames"].shape[1], max_positions(data_config)
    arrays["whisper_frames"] = np.zeros((len(kept), limit, width), np.float16)
    arrays["whisper_num_frames"] = np.zeros(len(kept), np.int32)
    for row, a in enumerate(kept):
      frames = a["whisper_frames"][:limit]
      arrays["whisper_frames"][row, : len(frames)] = frames
      arrays["whisper_num_frames"][row] = len(frames)
  return arrays


def example_inputs(arrays: dict | None, data_config) -> dict[str, np.ndarray]:
  """One clip's Whisper model inputs as a batch row (frames padded to the clip cap's positions), from the arrays
  `features.clip_features` made for it; with `arrays=None`, zeros of those shapes (an inference template).
  What inference adds to a speech example: `example.update(whisper_features.example_inputs(arrays, data_config))`."""
  if not data_config.features.get("whisper", ""):
    return {}
  if arrays is None:
    from emojax.models import whisper

    config = whisper.load_whisper_encoder()[0]
    layer = frames_layer(data_config.features)
    rows = config.num_layers + 1 if layer < 0 else layer + 1
    arrays = {"whisper_summary": np.zeros((rows, 2 * config.hidden_size), np.float32)}
    if layer >= 0:
      arrays["whisper_frames"] = np.zeros((0, config.hidden_size), np.float16)
  row = stacked([arrays], data_config)
  return {name: value[0] for name, value in row.items()}
