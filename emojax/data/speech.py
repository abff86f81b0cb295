"""Speech emotion corpora: RAVDESS, TESS and CREMA-D, labels from their file names.

  RAVDESS  Actor_NN/03-01-EE-II-SS-RR-AA.wav   modality, vocal channel, emotion, intensity,
                                               statement, repetition, actor (01-24)
  TESS     <speaker>_<word>_<emotion>.wav      OAF_back_angry.wav, YAF_date_ps.wav (ps = pleasant surprise)
  CREMA-D  AAAA_SSS_EEE_LL.wav                 1001_DFA_ANG_XX.wav: actor, sentence, emotion, level

Files are found anywhere below `config.data.root` (any sample rate, any channel count, any format
soundfile reads). Splits are speaker-independent by default: the sorted speakers are cut into
`num_folds` contiguous groups and group `fold` is validation, or `validation_speakers` names them.
A random split (`split_by="random"`) mixes speakers across splits and has to be asked for.
A name that breaks the convention, and audio that is unusable, are skipped, counted and named.

With `config.data.augment.feature_copies` = K > 0 the train split also carries K waveform-augmented copies of
every file's features, prepared once into the feature cache (`feature_copies`), which training picks from
instead of re-featurising augmented waveforms per example.
"""

import concurrent.futures
import logging
import os
import re
from pathlib import Path

import ml_collections
import numpy as np

from emojax import labels
from emojax.data import audio as audio_lib
from emojax.data import augment as augment_lib
from emojax.data import features as features_lib
from emojax.data import whisper_features
from emojax.data.base import Dataset, report_skipped


class BadFileName(ValueError):
  """A file name that does not follow its corpus's naming convention."""


# ----------------------------------------------------------------------------------------------
# File-name parsers: name -> (speaker, class name in the corpus's own label space).
# ----------------------------------------------------------------------------------------------
_RAVDESS_PARTS = ("modality", "vocal channel", "emotion", "intensity", "statement", "repetition", "actor")


def ravdess_emotion_from_filename(name: str) -> tuple[str, str]:
  """'03-01-05-02-01-01-12.wav' -> ('12', 'angry'). Audio-only speech (03-01) is accepted."""
  parts = Path(name).stem.split("-")
  if len(parts) != 7 or not all(re.fullmatch(r"\d\d", p) for p in parts):
    raise BadFileName(
      f"expected 7 two-digit parts MM-VV-EE-II-SS-RR-AA ({', '.join(_RAVDESS_PARTS)}), got {Path(name).stem!r}"
    )
  modality, channel, emotion, intensity, statement, repetition, actor = (int(p) for p in parts)
  checks = [
    (modality == 3, 0, "modality must be 03 (audio-only); 01/02 are the video files"),
    (channel == 1, 1, "vocal channel must be 01 (speech); 02 is song"),
    (1 <= emotion <= 8, 2, "emotion must be 01-08"),
    (intensity in (1, 2), 3, "intensity must be 01 (normal) or 02 (strong)"),
    (not (emotion == 1 and intensity == 2), 3, "neutral (01) has no strong intensity (02)"),
    (statement in (1, 2), 4, "statement must be 01 or 02"),
    (repetition in (1, 2), 5, "repetition must be 01 or 02"),
    (1 <= actor <= 24, 6, "actor must be 01-24"),
  ]
  for ok, index, rule in checks:
    if not ok:
      raise BadFileName(f"{_RAVDESS_PARTS[index]} part {parts[index]!r} (part {index + 1} of 7): {rule}")
  return parts[6], labels.RAVDESS_CLASSES[emotion - 1]


_TESS_EMOTIONS = {
  "angry": "angry",
  "disgust": "disgust",
  "fear": "fear",
  "happy": "happy",
  "neutral": "neutral",
  "ps": "pleasant_surprise",
  "pleasant_surprise": "pleasant_surprise",
  "pleasant_surprised": "pleasant_surprise",
  "sad": "sad",
}


def tess_emotion_from_filename(name: str) -> tuple[str, str]:
  """'OAF_back_angry.wav' -> ('OAF', 'angry'); 'YAF_date_ps.wav' -> ('YAF', 'pleasant_surprise')."""
  stem = Path(name).stem
  parts = stem.split("_")
  if len(parts) < 3:
    raise BadFileName(f"expected <speaker>_<word>_<emotion> (e.g. OAF_back_angry), got {stem!r}")
  speaker = parts[0].upper()
  if speaker not in ("OAF", "YAF"):
    raise BadFileName(f"speaker part {parts[0]!r} (part 1): TESS speakers are OAF and YAF")
  emotion = "_".join(parts[2:]).lower()
  if emotion not in _TESS_EMOTIONS:
    raise BadFileName(f"emotion part {emotion!r} (after the word): expected one of {sorted(_TESS_EMOTIONS)}")
  return speaker, _TESS_EMOTIONS[emotion]


_CREMA_D_EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_CREMA_D_SENTENCES = {"IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"}
_CREMA_D_LEVELS = {"LO", "MD", "HI", "XX", "X"}


def crema_d_emotion_from_filename(name: str) -> tuple[str, str]:
  """'1001_DFA_ANG_XX.wav' -> ('1001', 'anger')."""
  parts = Path(name).stem.split("_")
  if len(parts) != 4:
    raise BadFileName(f"expected ACTOR_SENTENCE_EMOTION_LEVEL (e.g. 1001_DFA_ANG_XX), got {Path(name).stem!r}")
  actor, sentence, emotion, level = parts
  if not (re.fullmatch(r"\d{4}", actor) and 1001 <= int(actor) <= 1091):
    raise BadFileName(f"actor part {actor!r} (part 1 of 4): expected 1001-1091")
  if sentence not in _CREMA_D_SENTENCES:
    raise BadFileName(f"sentence part {sentence!r} (part 2 of 4): expected one of {sorted(_CREMA_D_SENTENCES)}")
  if emotion not in _CREMA_D_EMOTIONS:
    raise BadFileName(f"emotion part {emotion!r} (part 3 of 4): expected one of {sorted(_CREMA_D_EMOTIONS)}")
  if level not in _CREMA_D_LEVELS:
    raise BadFileName(f"level part {level!r} (part 4 of 4): expected one of {sorted(_CREMA_D_LEVELS)}")
  return actor, _CREMA_D_EMOTIONS[emotion]


CORPORA = {
  "ravdess": (ravdess_emotion_from_filename, labels.RAVDESS_CLASSES),
  "tess": (tess_emotion_from_filename, labels.TESS_CLASSES),
  "crema_d": (crema_d_emotion_from_filename, labels.CREMA_D_CLASSES),
}


# ----------------------------------------------------------------------------------------------
# Splits.
# ----------------------------------------------------------------------------------------------
def validation_speakers(speakers: list[str], config: ml_collections.ConfigDict) -> set[str]:
  """Speakers held out for validation: `validation_speakers`, else fold `fold` of `num_folds`."""
  if config.validation_speakers:
    # Speakers may be written as in file names ("07") or as numbers (7).
    given = {str(s) for s in config.validation_speakers}
    chosen = {s for s in speakers if s in given or (s.isdigit() and str(int(s)) in given)}
    known = set(speakers) | {str(int(s)) for s in speakers if s.isdigit()}
    if given - known:
      raise ValueError(
        f"config.data.validation_speakers names {sorted(given - known)}, not among this corpus's speakers {speakers}."
      )
    return chosen
  if not 2 <= config.num_folds <= len(speakers):
    raise ValueError(
      f"config.data.num_folds={config.num_folds} must be between 2 and the number of speakers ({len(speakers)})."
    )
  if not 0 <= config.fold < config.num_folds:
    raise ValueError(f"config.data.fold={config.fold} must be in [0, num_folds={config.num_folds}).")
  return {str(s) for s in np.array_split(np.array(speakers), config.num_folds)[config.fold]}


def _in_split(split: str, speakers: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  if split == "all":  # every file, whatever the split settings: a whole corpus scored by a model trained elsewhere
    return np.ones(len(speakers), bool)
  if split not in ("train", "validation"):
    raise ValueError(
      f"Unknown split {split!r} for {config.name}: speech corpora have 'train' and 'validation' "
      "(held-out speakers), and 'all' (every file); the official test speakers are not read here."
    )
  if config.split_by == "speaker":
    held_out = np.isin(speakers, sorted(validation_speakers(sorted(set(speakers)), config)))
    field = "validation_speakers (or num_folds / fold)"
  elif config.split_by == "random":
    if not 0 < config.validation_fraction < 1:
      raise ValueError(f"config.data.validation_fraction={config.validation_fraction} must be in (0, 1).")
    held_out = np.random.default_rng(config.split_seed).random(len(speakers)) < config.validation_fraction
    field = "validation_fraction"
  else:
    raise ValueError(f"config.data.split_by={config.split_by!r}; expected 'speaker' (default) or 'random'.")
  if held_out.all() or not held_out.any():
    raise ValueError(
      f"config.data.{field} leaves the {'train' if held_out.all() else 'validation'} split of "
      f"{config.name} empty ({len(speakers)} files, speakers {sorted(set(speakers))})."
    )
  return held_out if split == "validation" else ~held_out


# ----------------------------------------------------------------------------------------------
# Loading.
# ----------------------------------------------------------------------------------------------
def find_files(root: Path, corpus: str) -> list[Path]:
  if not root.is_dir():
    raise FileNotFoundError(
      f"{corpus} root {root} does not exist. Point --config.data.root at the folder holding "
      f"the corpus's audio files (searched recursively for "
      f"{', '.join(audio_lib.AUDIO_SUFFIXES)})."
    )
  files = sorted(p for p in walk_files(root) if p.suffix.lower() in audio_lib.AUDIO_SUFFIXES)
  if not files:
    raise FileNotFoundError(
      f"No audio files ({', '.join(audio_lib.AUDIO_SUFFIXES)}) under {root}; is --config.data.root the {corpus} folder?"
    )
  return files


def walk_files(root: Path) -> list[Path]:
  """Every file below `root`, following symlinked folders (a corpus assembled from links to `Actor_NN` folders
  elsewhere), each real folder visited once, so a link cycle ends."""
  seen, files = set(), []
  for folder, subfolders, names in os.walk(root, followlinks=True):
    real = os.path.realpath(folder)
    if real in seen:
      subfolders[:] = []
      continue
    seen.add(real)
    files += [Path(folder) / name for name in names if os.path.isfile(os.path.join(folder, name))]
  return files


def class_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  if config.labels == "native":
    return CORPORA[config.name][1]
  if config.labels == "ekman7":
    return labels.EKMAN7
  raise ValueError(f"config.data.labels={config.labels!r}; expected 'native' (the corpus's own classes) or 'ekman7'.")


def load(config: ml_collections.ConfigDict, split: str) -> Dataset:
  """Reads one split of `config.name` into a `Dataset` (features, clip lengths, labels, speakers)."""
  if config.name not in CORPORA:
    raise ValueError(f"config.data.name={config.name!r} is not a speech corpus; expected one of {sorted(CORPORA)}.")
  audio_lib.validate(config.audio)
  features_lib.validate(config.features)
  if config.audio.min_seconds * config.audio.sample_rate < 9 * config.features.hop_length:
    raise ValueError(
      f"config.data.audio.min_seconds={config.audio.min_seconds} gives fewer than 9 feature frames "
      f"(hop_length={config.features.hop_length}); deltas and the models need more: raise it."
    )
  parse = CORPORA[config.name][0]
  names = class_names(config)
  root = Path(config.root).expanduser()
  skipped, entries = [], []
  for path in find_files(root, config.name):
    try:
      speaker, native = parse(path.name)
    except BadFileName as error:
      skipped.append(f"{path}: file name: {error}")
      continue
    target = native if config.labels == "native" else labels.speech_to_ekman7(native, config.calm)
    if target is not None and (not config.speakers or speaker in config.speakers):
      entries.append((path, speaker, names.index(target)))
  if not entries:
    raise FileNotFoundError(f"No {config.name} files with valid names under {root}. {skipped[:3]}")
  speakers = np.array([speaker for _, speaker, _ in entries])
  entries = [e for e, keep in zip(entries, _in_split(split, speakers, config)) if keep]

  copies = feature_copies(config, split)
  cache = features_lib.FeatureCache(config.cache_dir, config) if config.cache_dir else None

  def work(entry):
    try:
      arrays = features_lib.extract(entry[0], config, cache)
    except audio_lib.BadAudio as error:
      return f"{entry[0]}: {error}"
    if copies:
      arrays["copies"] = features_lib.extract_copies(entry[0], arrays["audio"], config, copies, cache)
    return arrays

  with concurrent.futures.ThreadPoolExecutor(max(1, config.feature_threads)) as pool:
    results = list(pool.map(work, entries))
  kept = [(entry, arrays) for entry, arrays in zip(entries, results) if isinstance(arrays, dict)]
  skipped += [result for result in results if isinstance(result, str)]
  report_skipped(skipped, f"{config.name} {split} files")
  if not kept:
    raise ValueError(f"No usable {config.name} {split} audio under {root} ({len(skipped)} skipped).")
  if cache is not None:
    logging.info(
      "%s %s: %d files%s, feature cache %s (%d hits, %d computed)",
      config.name,
      split,
      len(kept),
      f" x {copies} augmented copies" if copies else "",
      cache.directory,
      cache.hits,
      cache.misses,
    )
  return Dataset(
    arrays=_stack(kept, config, copies),
    class_names=names,
    skipped=skipped,
    model_inputs=model_inputs(config, with_copies=copies > 0),
  )


def feature_copies(config: ml_collections.ConfigDict, split: str) -> int:
  """K, the number of augmented feature copies each file of `split` gets (validated): 0 but for the train split.

  `config.data.augment.feature_copies` copies (default 0: none; waveforms are transformed and re-featurised per
  example) of the waveform augmentations (pitch shift, time stretch, noise, gain) are computed once, cached, and
  stored beside the clean features as `augmented_features` [N, K, T, D] and `augmented_num_frames` [N, K];
  training uses one of them (uniform) with `augment.waveform_change_probability`, then SpecAugment.
  Memory: N x K x T x D x 4 bytes (RAVDESS with the default features: 960 train files of T = 301 frames of
  D = 64 log-mel dims, 77 KB a copy); preparing them is one feature extraction per copy, cached like the clean
  features (timings: benchmarks/BENCHMARKS.md).
  Copies need waveform augmentation on (`enabled`, `probability` > 0, one transform): without it K is unused.
  """
  augment = config.augment
  count = augment.get("feature_copies", 0)
  if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
    raise ValueError(
      f"config.data.augment.feature_copies={count!r} must be an integer >= 0 (0: no copies, "
      "waveforms are augmented per example)."
    )
  if count and config.input != "features":
    raise ValueError(
      f"config.data.augment.feature_copies={count} needs config.data.input='features': copies are "
      f"feature matrices, and input={config.input!r} models read the waveform, which is augmented "
      "per example. Set --config.data.augment.feature_copies=0."
    )
  if not count or split != "train":
    return 0
  if not waveform_augmentation_enabled(augment):
    logging.warning(
      "config.data.augment.feature_copies=%d is unused: waveform augmentation is off (enabled=%s, "
      "probability=%s, or no transform); no copies are made.",
      count,
      augment.enabled,
      augment.probability,
    )
    return 0
  augment_lib.validate_speech(augment)  # the copies are drawn with these settings now, not at training time
  return int(count)


def model_inputs(config: ml_collections.ConfigDict, with_copies: bool = False) -> tuple[str, ...]:
  """The arrays a batch carries; the augmented copies only for a training split that has them (evaluation and
  model initialisation, which build examples from the evaluation split, never see them)."""
  if config.input == "waveform":
    return ("audio", "length", "label")
  if config.input == "features":
    return (
      ("features", "num_frames", "label")
      + (("functionals",) if config.features.egemaps else ())
      + (("augmented_features", "augmented_num_frames") if with_copies else ())
      + whisper_features.model_inputs(config.features)
    )
  raise ValueError(f"config.data.input={config.input!r}; expected 'features' (frame features) or 'waveform'.")


def _stack(kept: list, config: ml_collections.ConfigDict, copies: int = 0) -> dict[str, np.ndarray]:
  """Pads every clip and feature matrix (and each augmented copy) to the configured maximum so batches have one
  shape."""
  max_samples = audio_lib.max_clip_samples(config.audio)
  max_frames = features_lib.num_frames(max_samples, config.features.hop_length)
  count, dim = len(kept), kept[0][1]["features"].shape[1]
  arrays = {
    "features": np.zeros((count, max_frames, dim), np.float32),
    "num_frames": np.array([a["features"].shape[0] for _, a in kept], np.int32),
    "length": np.array([len(a["audio"]) for _, a in kept], np.int32),
    "label": np.array([label for (_, _, label), _ in kept], np.int32),
    "speaker": np.array([speaker for (_, speaker, _), _ in kept]),
    "id": np.array([path.stem for (path, _, _), _ in kept]),
  }
  for row, (_, a) in enumerate(kept):
    arrays["features"][row, : len(a["features"])] = a["features"]
  if copies:
    arrays["augmented_features"] = np.zeros((count, copies, max_frames, dim), np.float32)
    arrays["augmented_num_frames"] = np.zeros((count, copies), np.int32)
    for row, (_, a) in enumerate(kept):
      for copy, c in enumerate(a["copies"]):
        frames = c["features"][:max_frames]
        arrays["augmented_features"][row, copy, : len(frames)] = frames
        arrays["augmented_num_frames"][row, copy] = len(frames)
  # Waveforms are kept when the model reads them or augmentation has to re-featurise them (not with copies).
  if config.input == "waveform" or (
    waveform_augmentation_enabled(config.augment) and not config.augment.get("feature_copies", 0)
  ):
    arrays["audio"] = np.zeros((count, max_samples), np.float32)
    for row, (_, a) in enumerate(kept):
      arrays["audio"][row, : len(a["audio"])] = a["audio"]
  if config.features.egemaps:
    arrays["functionals"] = np.stack([a["functionals"] for _, a in kept])
  arrays.update(whisper_features.stacked([a for _, a in kept], config))
  return arrays


def waveform_augmentation_enabled(config: ml_collections.ConfigDict) -> bool:
  return bool(
    config.enabled
    and config.probability > 0
    and (config.pitch_shift_semitones > 0 or config.time_stretch > 0 or config.add_noise or config.gain_db > 0)
  )
