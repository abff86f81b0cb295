"""CMU-MOSI: opinion-video utterances as text, audio and video features and a transcript, binary sentiment.

The layout of the utterance-level release of the ACL 2017 context-dependent sentiment paper (bc-LSTM), train
split only (the test part is held back):

  text/text_train0.csv, audio/audio_train0.csv, video/video_train0.csv   row-aligned, no header: the features,
      then the label (1 = positive) in the last column. text: a 100-d utterance CNN; audio: 73 openSMILE
      functionals; video: a 100-d 3D-CNN.
  transcripts.csv    utterance id `<video>_<n>` (n counts the video's utterances from 1), upper-case transcript,
                     video index, label
  text_train.csv     per feature row, the row of transcripts.csv it is (0-based), then its 100 text features

Modalities: `text`, `audio`, `video` (the released vectors) and `transcript` (the words, tokenised for a text
encoder such as all-MiniLM-L6-v2). The join: feature row r is the utterance named by row r of text_train.csv when
both rows carry the same text features (as released), else by the one row of text_train.csv with those features;
a feature row that finds no transcript has no utterance id or video and is skipped, counted and named, while a
transcript without feature rows is kept as an example with its transcript alone. Labels: ("negative",
"positive"), not Ekman.

Validation is speaker-independent by video: `validation_fraction` of the videos (seeded by `split_seed`), or the
ones named in `validation_videos`, are held out whole.

Note on the released text and video vectors: they are the penultimate layers of networks the release trained on
these very training labels, so on utterances carved from the training split they separate the classes almost
perfectly (docs/aligned_fusion.md): they measure what those networks memorised, not how they generalise.
"""

import csv
import dataclasses
import functools
import math
from pathlib import Path

import numpy as np

from emojax.data import aligned
from emojax.data.base import Dataset

CLASS_NAMES = ("negative", "positive")
FEATURE_FILES = {"text": "text/text_train0.csv", "audio": "audio/audio_train0.csv", "video": "video/video_train0.csv"}
VECTOR_MODALITIES = tuple(FEATURE_FILES)
MODALITIES = VECTOR_MODALITIES + ("transcript",)
TRANSCRIPTS, TRANSCRIPT_INDEX = "transcripts.csv", "text_train.csv"
LAYOUT = "see ../shared/data/README.md: cmu_mosi/ with transcripts.csv, text_train.csv and text|audio|video/*.csv"


def class_names(config=None) -> tuple[str, ...]:
  """MOSI's classes: the sign of the sentiment score (the binary task papers report)."""
  return CLASS_NAMES


@dataclasses.dataclass(frozen=True)
class Utterances:
  """Every readable utterance, in transcripts.csv order."""

  ids: np.ndarray  # [N] `<video>_<n>`
  videos: np.ndarray  # [N] the video's id
  positions: np.ndarray  # [N] n: the utterance's place in its video
  labels: np.ndarray  # [N] 0 negative, 1 positive
  transcripts: np.ndarray  # [N] the words
  features: dict  # {text|audio|video: [N, D] float32, zeros where absent}
  has: dict  # {text|audio|video: bool [N]}
  skipped: tuple  # descriptions of skipped rows


def _rows(path: Path) -> list[list[str]]:
  if not path.is_file():
    raise FileNotFoundError(f"No {path}; {LAYOUT}.")
  with open(path, newline="") as f:
    return list(csv.reader(f))


def _numbers(row: list[str]) -> list[float] | None:
  try:
    values = [float(v) for v in row if v.strip() != ""]  # the release's rows end with a trailing comma
  except ValueError:
    return None
  return values if all(math.isfinite(v) for v in values) else None


def _label(value: float | str) -> int | None:
  try:
    label = float(value)
  except ValueError:
    return None
  return int(label) if label in (0.0, 1.0) else None


@functools.cache
def read(root: str) -> Utterances:
  """Reads and joins the release's files (see the module docstring); cached per folder."""
  folder = Path(root).expanduser()
  if not folder.is_dir():
    raise FileNotFoundError(f"CMU-MOSI folder {folder} does not exist; point config.data.root at it ({LAYOUT}).")
  skipped = []
  # Transcripts: one utterance per row.
  ids, videos, positions, labels, words = [], [], [], [], []
  for line, row in enumerate(_rows(folder / TRANSCRIPTS), 1):
    where = f"{TRANSCRIPTS}:{line}"
    video, _, number = row[0].rpartition("_") if row else ("", "", "")
    label = _label(row[3]) if len(row) == 4 else None
    if len(row) != 4 or not video or not number.isdigit() or label is None or not row[1].strip():
      skipped.append(f"{where}: expected `<video>_<n>`, a transcript, the video index and a 0/1 label; got {row[:4]}")
      ids.append(None)  # keeps transcripts.csv's row numbers, which text_train.csv points at
      continue
    ids.append(row[0])
    videos.append(video)
    positions.append(int(number))
    labels.append(label)
    words.append(row[1].strip())
  kept_transcripts = [i for i, key in enumerate(ids) if key is not None]
  row_of_transcript = {t: n for n, t in enumerate(kept_transcripts)}
  count = len(kept_transcripts)

  # Feature files: row-aligned, label last.
  tables, table_labels = {}, None
  for m, file in FEATURE_FILES.items():
    rows = [_numbers(r) for r in _rows(folder / file)]
    if table_labels is not None and len(rows) != len(table_labels):
      raise ValueError(
        f"{folder / file} has {len(rows)} rows, {FEATURE_FILES['text']} {len(table_labels)}: the "
        f"release's feature files are row-aligned ({LAYOUT})."
      )
    tables[m] = rows
    labels_here = [None if r is None or not r else _label(r[-1]) for r in rows]
    table_labels = (
      labels_here if table_labels is None else [a if a == b else None for a, b in zip(table_labels, labels_here)]
    )
  widths = {m: max((len(r) - 1 for r in rows if r), default=0) for m, rows in tables.items()}

  # text_train.csv: feature row -> transcripts.csv row, confirmed by the text features it repeats.
  index_rows = [_numbers(r) for r in _rows(folder / TRANSCRIPT_INDEX)]
  usable = [r for r, values in enumerate(index_rows) if values is not None and len(values) == widths["text"] + 1]
  index_features = np.array([index_rows[r][1:] for r in usable]).reshape(len(usable), widths["text"])
  same = lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(-1) < 1e-6  # the two files print digits differently
  features = {m: np.zeros((count, widths[m]), np.float32) for m in FEATURE_FILES}
  has = {m: np.zeros(count, bool) for m in FEATURE_FILES}
  taken = set()
  for r, label in enumerate(table_labels):
    where = f"feature row {r + 1}"
    if label is None or any(tables[m][r] is None or len(tables[m][r]) != widths[m] + 1 for m in FEATURE_FILES):
      skipped.append(f"{where}: unreadable, of the wrong width, or its label differs between the feature files")
      continue
    text = tables["text"][r][:-1]
    same_row = (
      r < len(index_rows)
      and index_rows[r] is not None
      and len(index_rows[r]) == widths["text"] + 1
      and (same(index_rows[r][1:], text))
    )
    candidates = [r] if same_row else [usable[i] for i in np.flatnonzero(same(index_features, text))]
    if len(candidates) != 1:
      skipped.append(
        f"{where}: {'no' if not candidates else 'several'} rows of {TRANSCRIPT_INDEX} carry its text "
        "features, so it has no utterance id or video"
      )
      continue
    transcript = int(index_rows[candidates[0]][0])
    if transcript not in row_of_transcript or transcript in taken:
      skipped.append(
        f"{where}: {TRANSCRIPT_INDEX} points at transcript row {transcript + 1}, which is "
        f"{'unreadable or missing' if transcript not in row_of_transcript else 'taken by another row'}"
      )
      continue
    n = row_of_transcript[transcript]
    if labels[n] != label:
      skipped.append(f"{where}: label {label}, but its transcript {ids[transcript]} says {labels[n]}")
      continue
    taken.add(transcript)
    for m in FEATURE_FILES:
      features[m][n] = tables[m][r][:-1]
      has[m][n] = True
  if not count:
    raise ValueError(f"No readable utterance in {folder / TRANSCRIPTS} ({skipped[:3]}).")
  return Utterances(
    np.array([ids[i] for i in kept_transcripts]),
    np.array(videos),
    np.array(positions, np.int32),
    np.array(labels, np.int32),
    np.array(words),
    features,
    has,
    tuple(skipped),
  )


def validation_videos(videos: np.ndarray, config) -> set[str]:
  """`validation_videos`, else `validation_fraction` of the sorted videos in a permutation seeded by `split_seed`."""
  names = sorted(set(np.asarray(videos).tolist()))
  if config.validation_videos:
    chosen = {str(v) for v in config.validation_videos}
    unknown = sorted(chosen - set(names))
    if unknown:
      raise ValueError(f"config.data.validation_videos names {unknown}, not among MOSI's videos here.")
    return chosen
  if not 0 < config.validation_fraction < 1:
    raise ValueError(f"config.data.validation_fraction={config.validation_fraction} must be in (0, 1).")
  count = min(max(1, round(config.validation_fraction * len(names))), len(names) - 1)
  order = np.random.default_rng(config.split_seed).permutation(len(names))
  return {names[i] for i in order[:count]}


def modality_source(utterances: Utterances, m: str, rows: np.ndarray, config) -> Dataset:
  """Modality m's rows `rows` (those that have it) as a Dataset keyed by utterance id."""
  base = {
    "label": utterances.labels[rows],
    "id": utterances.ids[rows],
    "video": utterances.videos[rows],
    "position": utterances.positions[rows],
  }
  if m == "transcript":
    from emojax.data import text

    tokens = text.tokenize(utterances.transcripts[rows].tolist(), config.tokenizer, config.max_length)
    return Dataset({**tokens, **base}, class_names=CLASS_NAMES, model_inputs=("input_ids", "attention_mask", "label"))
  return Dataset(
    {"features": utterances.features[m][rows], **base}, class_names=CLASS_NAMES, model_inputs=("features", "label")
  )


def _split(utterances: Utterances, split: str, config) -> np.ndarray:
  return aligned.split_rows(utterances.videos, split, validation_videos(utterances.videos, config), "cmu_mosi", "video")


def _has(utterances: Utterances, m: str) -> np.ndarray:
  return utterances.has[m] if m in utterances.has else np.ones(len(utterances.ids), bool)


def load_modality(config, split: str) -> Dataset:
  """One modality alone (`config.data.name = "mosi"`, `config.data.modality`): the split's utterances that have it."""
  m = config.modality
  if m not in MODALITIES:
    raise ValueError(f"config.data.modality={m!r}; MOSI's modalities are {MODALITIES}.")
  utterances = read(str(Path(config.root).expanduser()))
  rows = np.flatnonzero(_split(utterances, split, config) & _has(utterances, m))
  data = modality_source(utterances, m, rows, config)
  data.skipped = list(utterances.skipped)
  if m in VECTOR_MODALITIES:
    train = _split(utterances, "train", config) & _has(utterances, m)
    data.metadata = {"model_kwargs": aligned.vector_statistics(utterances.features[m][train])}
  return data


def load(config, split: str) -> Dataset:
  """The fusion examples of one split (`config.data.name = "multimodal_mosi"`); with `config.data.context` each
  carries its whole video (`aligned.utterance_context`)."""
  modalities = aligned.check_modalities(config.modalities, MODALITIES, "cmu_mosi")
  utterances = read(str(Path(config.root).expanduser()))
  in_split = _split(utterances, split, config)
  train = _split(utterances, "train", config)
  sources, encoder_kwargs = {}, {}
  for m in modalities:
    if config.exports.get(m, ""):
      sources[m] = aligned.export_source(config.exports[m], split, CLASS_NAMES, m)
      foreign = sorted(set(sources[m].arrays["id"]) - set(utterances.ids[in_split]))
      if foreign:
        raise ValueError(
          f"The {m} run {config.exports[m]} exported {len(foreign)} {split} utterances that are not "
          f"in this {split} split (e.g. {foreign[:3]}): train it with the same video split "
          "(config.data.validation_fraction, split_seed, validation_videos)."
        )
      continue
    sources[m] = modality_source(utterances, m, np.flatnonzero(in_split & _has(utterances, m)), config)
    if m in VECTOR_MODALITIES:
      encoder_kwargs[m] = aligned.vector_statistics(utterances.features[m][train & utterances.has[m]])
  groups = dict(zip(utterances.ids.tolist(), utterances.videos.tolist()))
  positions = dict(zip(utterances.ids.tolist(), utterances.positions.tolist()))
  data = aligned.join(
    sources,
    CLASS_NAMES,
    split,
    "cmu_mosi",
    groups,
    {"position": positions},
    encoder_kwargs=encoder_kwargs,
    skipped=list(utterances.skipped),
  )
  if config.get("context", False):
    data = aligned.utterance_context(data, config.get("max_utterances", 0))
  return data
