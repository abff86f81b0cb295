"""What a model reads, and how a user's photo, recording or sentence becomes it.

`InputSpec` describes a model's inputs from its run's data config alone (no example is read): one example at
full size, and the sequence axes (frames, samples, tokens) that batches are cut to a few fixed lengths along, so
a model compiles once per (batch size, lengths) bucket however long its inputs are. `face_examples`,
`speech_windows` and `text_examples` turn user inputs into examples with the readers' own functions
(`data.images`, `data.audio`, `data.features`, `data.text`): a model sees from a user exactly what it saw from
its validation split.

The synthetic multimodal default (`make demo`) has no raw modality but faces: its speech input is a feature
matrix [frames, bins] and its text a list of token ids, given as such.
"""

import dataclasses
import io
import os

import ml_collections
import numpy as np

from emojax.data import SPEECH_CORPORA, pipeline, whisper_features
from emojax.data import audio as audio_lib
from emojax.data import images as images_lib

FACE_DATASETS = ("fer2013", "synthetic")
DEFAULT_BATCH_SIZES = (1, 8, 32)  # batch shapes a Recognizer compiles; larger batches run in chunks of the largest
MODALITIES = ("face", "speech", "text")
# Dataset arrays that are targets or bookkeeping, never model inputs.
NON_INPUTS = ("label", "labels", "labels_28", "sentiment")


class InputError(ValueError):
  """A user input that cannot be used (not an image, silent audio, empty text, a modality the model lacks)."""


@dataclasses.dataclass(frozen=True)
class SequenceAxis:
  """Arrays whose first (per-example) axis is a padded sequence: `keys` are cut or padded together to the smallest
  of `buckets` holding the batch's longest real row, its length read from `length_key` (a count per example) or
  from `mask_key` (a 0/1 mask)."""

  keys: tuple[str, ...]
  buckets: tuple[int, ...]
  length_key: str | None = None
  mask_key: str | None = None

  def length(self, example: dict) -> int:
    if self.length_key is not None:
      return int(np.asarray(example[self.length_key]))
    return int(np.asarray(example[self.mask_key]).sum())

  def bucket(self, longest: int) -> int:
    for size in self.buckets:
      if size >= longest:
        return size
    raise InputError(f"An input of {longest} steps is longer than this model reads ({self.buckets[-1]}).")


@dataclasses.dataclass
class InputSpec:
  """A model's inputs: `example` (one example at full size, zeros; uint8 images already as float32 in [0, 1]) and
  its `sequences`; `kinds` names what each modality is given as (`image`, `audio`, `waveform`, `frames`, `text`,
  `token_ids`)."""

  example: dict[str, np.ndarray]
  sequences: list[SequenceAxis]
  kinds: dict[str, str]

  @property
  def modalities(self) -> tuple[str, ...]:
    return tuple(self.kinds)

  def zeros(self, modality_prefix: str) -> dict[str, np.ndarray]:
    """The example's arrays of one modality (keys starting with `modality_prefix`), zeros: an absent modality."""
    return {k: np.zeros_like(v) for k, v in self.example.items() if k.startswith(modality_prefix)}


def input_spec(data_config: ml_collections.ConfigDict) -> InputSpec:
  """The inputs of a model trained on `data_config` (a run's `config.data`)."""
  name = data_config.name
  if name in FACE_DATASETS:
    if data_config.get("landmark_cache"):
      raise InputError(
        "This face model reads FaceMesh landmarks beside the image (config.data.landmark_cache), "
        "which inference cannot extract yet; bundle a model trained without landmarks."
      )
    example, sequences = face_inputs()
    return InputSpec(example, sequences, {"face": "image"})
  if name in SPEECH_CORPORA:
    example, sequences, kind = speech_inputs(data_config)
    return InputSpec(example, sequences, {"speech": kind})
  if name in ("goemotions", "labelled_text"):
    example, sequences = text_inputs(data_config)
    return InputSpec(example, sequences, {"text": "text"})
  if name == "multimodal_inputs":
    example, sequences, kinds = {}, [], {}
    for modality, modality_config in data_config.modalities.items():
      spec = input_spec(modality_config)
      if spec.modalities != (modality,):
        raise InputError(
          f"End-to-end fusion modality {modality!r} was trained on {modality_config.name!r}, "
          f"which reads {spec.modalities}."
        )
      prefix = f"{modality}_"
      example.update({prefix + k: v for k, v in spec.example.items()})
      sequences += [
        SequenceAxis(
          tuple(prefix + k for k in s.keys),
          s.buckets,
          s.length_key and prefix + s.length_key,
          s.mask_key and prefix + s.mask_key,
        )
        for s in spec.sequences
      ]
      kinds[modality] = spec.kinds[modality]
    example["present"] = np.zeros(len(kinds), np.float32)
    return InputSpec(example, sequences, kinds)
  if name == "multimodal_synthetic_inputs":
    return synthetic_multimodal_spec(data_config)
  raise InputError(
    f"Models trained on config.data.name={name!r} cannot be used for prediction: inference reads faces "
    f"({', '.join(FACE_DATASETS)}), speech ({', '.join(SPEECH_CORPORA)}), text (goemotions, labelled_text) and "
    "end-to-end fusion of those (multimodal_inputs, multimodal_synthetic_inputs). Face clips (CNNBiLSTM) and "
    "fusion on exported encoder outputs are not bundled: fuse end to end (configs/multimodal.py) instead."
  )


def face_inputs():
  size = images_lib.IMAGE_SIZE
  return {"image": np.zeros((size, size, 1), np.float32)}, []


def speech_inputs(data_config: ml_collections.ConfigDict):
  """Frame features padded to the clip cap's frame count (buckets at a third and two thirds of it, of the same
  length modulo 8, so stride-2 layers pad a shorter bucket exactly as they padded the full one), or the
  waveform (one bucket: wav2vec 2.0's group norm sees padding)."""
  from emojax.data import features as features_lib

  max_samples = audio_lib.max_clip_samples(data_config.audio)
  if data_config.input == "waveform":
    return (
      {"audio": np.zeros(max_samples, np.float32), "length": np.zeros((), np.int32)},
      [SequenceAxis(("audio",), (max_samples,), length_key="length")],
      "waveform",
    )
  frames = features_lib.num_frames(max_samples, data_config.features.hop_length)
  buckets = sorted({frames - 8 * int(round((frames - frames * f) / 8)) for f in (1 / 3, 2 / 3)} | {frames})
  example = {
    "features": np.zeros((frames, features_lib.feature_dim(data_config.features)), np.float32),
    "num_frames": np.zeros((), np.int32),
  }
  if data_config.features.egemaps:
    example["functionals"] = np.zeros(features_lib.EGEMAPS_DIMS, np.float32)
  example.update(whisper_features.example_inputs(None, data_config))  # {} unless features.whisper is set
  return example, [SequenceAxis(("features",), tuple(b for b in buckets if b > 0), length_key="num_frames")], "audio"


def text_inputs(data_config: ml_collections.ConfigDict):
  from emojax.data import text as text_lib

  width = int(data_config.max_length)
  example = {"input_ids": np.zeros(width, np.int32), "attention_mask": np.zeros(width, np.int32)}
  if data_config.get("lexicon", False):
    example["lexicon"] = np.zeros(len(text_lib.LEXICON_FEATURES), np.float32)
  buckets = tuple(
    sorted(
      {
        pipeline.token_width(w, width, pipeline.token_widths(data_config))
        for w in (*pipeline.token_widths(data_config), width)
      }
    )
  )
  return example, [SequenceAxis(("input_ids", "attention_mask"), buckets, mask_key="attention_mask")]


def synthetic_multimodal_spec(data_config: ml_collections.ConfigDict) -> InputSpec:
  """The demo's tuples: a 48x48 face, a speech feature matrix and a token-id sequence (shapes from one drawn
  example of `data.multimodal.synthetic_inputs`)."""
  from emojax.data import multimodal

  drawn = multimodal.synthetic_inputs("validation", 1, seed=data_config.get("seed", 0))
  example = {k: np.zeros_like(pipeline.decode(drawn[0], (k,))[k]) for k in drawn.model_inputs if k not in NON_INPUTS}
  tokens = example["text_input_ids"].shape[0]
  sequences = [
    SequenceAxis(("speech_features",), (example["speech_features"].shape[0],), length_key="speech_num_frames"),
    SequenceAxis(("text_input_ids", "text_attention_mask"), (tokens,), mask_key="text_attention_mask"),
  ]
  return InputSpec(example, sequences, {"face": "image", "speech": "frames", "text": "token_ids"})


# ----------------------------------------------------------------------------------------------
# Faces.
# ----------------------------------------------------------------------------------------------
DETECTORS = ("haar", "none")


@dataclasses.dataclass
class FaceCrop:
  """One face of a picture: the model's input and where it was found ([x, y, width, height] in the picture)."""

  image: np.ndarray
  box: tuple[int, int, int, int]


def face_examples(source, detect: str = "haar") -> tuple[list[FaceCrop], str]:
  """(faces, why there are none): every frontal face of a picture (`images.detect_faces` on a copy of at most
  PHOTO_SEARCH_SIDE pixels), largest first, each cropped square from the full picture with a little context and
  scaled to 48x48 like the readers' images; with `detect="none"`, the whole picture as one
  aligned face crop, decoded exactly as the FER2013 reader decodes its files."""
  if detect not in DETECTORS:
    raise InputError(
      f"detect={detect!r}; use 'haar' (find faces with OpenCV's Haar cascade) or 'none' (the "
      "picture is an aligned face crop)."
    )
  try:
    gray = images_lib.to_grayscale(source)
  except images_lib.BadImage as error:
    raise InputError(f"face: {error}") from error
  height, width = gray.shape
  if detect == "none":
    return [FaceCrop(decoded(images_lib.resize_face(gray)), (0, 0, width, height))], ""
  boxes = images_lib.detect_faces(gray, images_lib.PHOTO_SEARCH_SIDE, images_lib.PHOTO_SCALE_FACTOR)
  if not boxes:
    smallest = max(
      images_lib.HAAR_MIN_SIZE, round(images_lib.HAAR_MIN_SIZE * max(height, width) / images_lib.PHOTO_SEARCH_SIDE)
    )
    return [], (
      f"no face found in the {width}x{height} picture (OpenCV's frontal-face Haar cascade, faces of "
      f"{smallest} pixels or more); pass detect='none' if it is already a face crop"
    )
  faces = []
  for box in boxes:
    top, left, side = images_lib.face_square(box, height, width)
    faces.append(FaceCrop(decoded(images_lib.resize_face(gray[top : top + side, left : left + side])), box))
  return faces, ""


def decoded(image: np.ndarray) -> np.ndarray:
  """uint8 pixels -> float32 in [0, 1], as `pipeline.decode` gives the model a dataset's images."""
  return pipeline.decode({"image": image}, ("image",))["image"]


# ----------------------------------------------------------------------------------------------
# Speech.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SpeechWindow:
  """One clip-sized window of a recording (seconds from the start of the trimmed speech) and its model input."""

  start: float
  end: float
  example: dict


def audio_config(data_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict | None:
  """The audio settings a model's recordings are read with: its own (`config.data.audio`), an end-to-end fusion
  model's speech encoder's, or None for a model that reads no recordings."""
  if "audio" in data_config:
    return data_config.audio
  modalities = data_config.get("modalities") or {}
  return modalities["speech"].get("audio") if "speech" in modalities else None


def windowing(audio_config: ml_collections.ConfigDict) -> dict:
  """How long recordings are scored (what a bundle records): windows of the clip cap the model was trained on,
  every half clip, for recordings longer than two clips; shorter ones as the readers read them."""
  return {
    "window_seconds": float(audio_config.max_seconds),
    "hop_seconds": audio_config.max_seconds / 2,
    "long_recording_seconds": 2.0 * audio_config.max_seconds,
  }


def speech_windows(
  source,
  data_config: ml_collections.ConfigDict,
  hop_seconds: float,
  long_seconds: float,
  sample_rate: int | None = None,
) -> tuple[list[SpeechWindow], float]:
  """(windows, seconds of speech after trimming silence) of a recording: a path, bytes or a file object in any
  format soundfile reads, or samples [S] / [S, channels] with `sample_rate`. Up to `long_seconds` of speech it is
  one window, the clip the speech readers keep, featurised as they featurise a file; a longer recording is cut
  into windows of the clip cap every `hop_seconds` (`audio.sliding_windows`). Raises `InputError` for unusable
  audio."""
  audio = data_config.audio
  try:
    wave = _read_wave(source, audio.sample_rate, sample_rate)
    speech = audio_lib.trimmed_speech(wave, audio)
  except audio_lib.BadAudio as error:
    raise InputError(f"audio: {error}") from error
  from emojax.data import features as features_lib

  windows = []
  for start, end in audio_lib.sliding_windows(speech, audio, hop_seconds, long_seconds):
    clip = speech[start:end]
    arrays = features_lib.clip_features(clip, data_config)
    if data_config.input == "waveform":
      example = {"audio": clip, "length": np.asarray(len(clip), np.int32)}
    else:
      example = {"features": arrays["features"], "num_frames": np.asarray(len(arrays["features"]), np.int32)}
      if "functionals" in arrays:
        example["functionals"] = arrays["functionals"]
      example.update(whisper_features.example_inputs(arrays, data_config))
    windows.append(SpeechWindow(start / audio.sample_rate, end / audio.sample_rate, example))
  return windows, len(speech) / audio.sample_rate


def _read_wave(source, rate: int, source_rate: int | None) -> np.ndarray:
  if isinstance(source, np.ndarray):
    if source_rate is None:
      raise InputError(
        "audio given as samples needs sample_rate= (e.g. 16000): the models read "
        f"{rate} Hz, and samples alone do not say their rate."
      )
    return audio_lib.to_mono(source, source_rate, rate)
  if isinstance(source, (bytes, bytearray, memoryview)):
    if len(source) == 0:
      raise InputError("audio: empty bytes")
    return audio_lib.read_audio(io.BytesIO(bytes(source)), rate)
  if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
    raise InputError(f"audio: no file at {os.fspath(source)!r}")
  return audio_lib.read_audio(source, rate)


def frames_example(source, spec: InputSpec) -> dict:
  """The demo's speech input: a feature matrix [frames, bins] as the synthetic tuples carry it."""
  features = np.asarray(source, np.float32) if not isinstance(source, (str, bytes, os.PathLike)) else None
  expected = spec.example["speech_features"].shape
  if features is None or features.ndim != 2 or features.shape[1] != expected[1] or len(features) == 0:
    raise InputError(
      f"This bundle's speech encoder was trained on synthetic feature matrices, not recordings: "
      f"give audio= as a float array [frames <= {expected[0]}, {expected[1]}]."
    )
  if len(features) > expected[0]:
    raise InputError(f"audio: {len(features)} frames; this bundle reads at most {expected[0]}.")
  return {"speech_features": features, "speech_num_frames": np.asarray(len(features), np.int32)}


# ----------------------------------------------------------------------------------------------
# Text.
# ----------------------------------------------------------------------------------------------
def text_examples(texts: list[str], data_config: ml_collections.ConfigDict) -> list[dict]:
  """Token ids and mask (and lexicon features) of each text, by the reader's own `text.tokenize` and
  `text.lexicon_features`: cleaned, tokenized by the bundle's tokenizer, truncated at `max_length`."""
  from emojax.data import text as text_lib

  for index, text in enumerate(texts):
    if not isinstance(text, str):
      raise InputError(f"text {index}: expected a string, got {type(text).__name__}")
    if not text_lib.clean_text(text):
      raise InputError(f"text {index}: empty (nothing left after removing whitespace and control characters)")
  tokens = text_lib.tokenize(texts, data_config.tokenizer, data_config.max_length)
  examples = [
    {"input_ids": tokens["input_ids"][i], "attention_mask": tokens["attention_mask"][i]} for i in range(len(texts))
  ]
  if data_config.get("lexicon", False):
    lexicon = text_lib.lexicon_features(texts)
    for example, row in zip(examples, lexicon):
      example["lexicon"] = row
  return examples


def token_ids_example(source, spec: InputSpec) -> dict:
  """The demo's text input: token ids of its 64-word synthetic vocabulary."""
  width = spec.example["text_input_ids"].shape[0]
  ids = np.asarray(source) if not isinstance(source, str) else None
  if ids is None or ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or not 0 < len(ids) <= width:
    raise InputError(
      f"This bundle's text encoder was trained on synthetic token ids, not sentences: give text= "
      f"as 1 to {width} integer token ids."
    )
  padded = np.zeros(width, np.int32)
  padded[: len(ids)] = ids
  return {"text_input_ids": padded, "text_attention_mask": (np.arange(width) < len(ids)).astype(np.int32)}


# ----------------------------------------------------------------------------------------------
# Batches at bucket shapes.
# ----------------------------------------------------------------------------------------------
def fit(array: np.ndarray, length: int) -> np.ndarray:
  """`array` cut or zero-padded to `length` along its first axis."""
  array = np.asarray(array)
  if array.shape[0] >= length:
    return array[:length]
  return np.pad(array, [(0, length - array.shape[0])] + [(0, 0)] * (array.ndim - 1))


def batch_of(examples: list[dict], spec: InputSpec, batch_size: int) -> tuple[dict, tuple[int, ...]]:
  """Examples -> one batch of `batch_size` rows (padding rows are zeros), every sequence axis at the smallest of
  its buckets that holds the longest example; also returns those lengths (the bucket's key)."""
  lengths, sizes = {}, []
  for axis in spec.sequences:
    size = axis.bucket(max((axis.length(e) for e in examples), default=1))
    sizes.append(size)
    lengths.update({key: size for key in axis.keys})
  batch = {}
  for key, template in spec.example.items():
    shape = ((lengths[key],) + template.shape[1:]) if key in lengths else template.shape
    rows = np.zeros((batch_size,) + shape, template.dtype)
    for row, example in enumerate(examples):
      value = example[key] if key in example else np.zeros_like(template)
      rows[row] = fit(value, lengths[key]) if key in lengths else value
    batch[key] = rows
  return batch, tuple(sizes)
