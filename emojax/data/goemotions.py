"""GoEmotions (Demszky et al., 2020): Reddit comments, 27 emotions + neutral, multi-label.

The official release is a folder of `train.tsv`, `dev.tsv` (and `test.tsv`), each row
`text \t comma-separated label ids \t comment id`, with `emotions.txt` naming the ids and
`ekman_mapping.json` / `sentiment_dict.json` grouping them. Three label spaces come from one file:

* `goemotions28`: the 28 original labels, multi-label.
* `ekman`: Ekman-7 (anger, disgust, fear, happiness = GoEmotions' "joy", sadness, surprise, neutral),
  a row carrying every group one of its labels falls in (still multi-label, as in the paper).
* `sentiment`: positive, negative, ambiguous, neutral, likewise.

Every row also carries a soft sentiment target (the share of its labels in each sentiment) for the
auxiliary sentiment head, and its 28-label multi-hot so predictions of a 28-label model can be
mapped onto the coarser spaces at evaluation. Rows with a bad label id, a wrong column count or an
empty text are skipped, counted and named.
"""

import json
import os
from pathlib import Path

import numpy as np

from emojax import labels as labels_lib
from emojax.data.base import Dataset, report_skipped

SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "dev": "dev.tsv", "test": "test.tsv"}
LABEL_SPACES = ("goemotions28", "ekman", "sentiment")
SENTIMENTS = ("positive", "negative", "ambiguous", "neutral")
# ekman_mapping.json names Ekman's happiness "joy"; the common space of every modality says happiness.
_EKMAN_FILE_NAMES = {"joy": "happiness"}

LAYOUT_HELP = (
  "GoEmotions is read from the folder of the official release: train.tsv / dev.tsv (rows "
  "`text<TAB>label ids<TAB>comment id`), emotions.txt, ekman_mapping.json and sentiment_dict.json. "
  "Point --config.data.root at that folder (github.com/google-research/google-research, "
  "goemotions/data)."
)


class LabelSpaces:
  """The 28 names of `emotions.txt` and the Ekman and sentiment groupings read from the release's JSON."""

  def __init__(self, root: str | os.PathLike):
    root = Path(root).expanduser()
    for name in ("emotions.txt", "ekman_mapping.json", "sentiment_dict.json"):
      if not (root / name).is_file():
        raise FileNotFoundError(f"{root / name} is missing. {LAYOUT_HELP}")
    self.emotions = tuple(line.strip() for line in (root / "emotions.txt").read_text().splitlines() if line.strip())
    if self.emotions[-1] != "neutral":
      raise ValueError(f"{root / 'emotions.txt'}: the last label should be 'neutral', got {self.emotions[-1]!r}.")
    ekman = {_EKMAN_FILE_NAMES.get(k, k): v for k, v in json.loads((root / "ekman_mapping.json").read_text()).items()}
    sentiment = json.loads((root / "sentiment_dict.json").read_text())
    self.groupings = {
      "ekman": self._grouping(ekman, labels_lib.EKMAN7, root / "ekman_mapping.json"),
      "sentiment": self._grouping(sentiment, SENTIMENTS, root / "sentiment_dict.json"),
    }

  def _grouping(self, mapping: dict, group_names: tuple, path: Path) -> np.ndarray:
    """A [28, groups] 0/1 matrix: emotion i belongs to group j. `neutral` is its own group in both spaces."""
    mapping = {**mapping, "neutral": ["neutral"]}
    unknown = set(mapping) - set(group_names)
    if unknown:
      raise ValueError(f"{path}: groups {sorted(unknown)} are not in {group_names}.")
    matrix = np.zeros((len(self.emotions), len(group_names)), np.float32)
    for group, members in mapping.items():
      for member in members:
        if member not in self.emotions:
          raise ValueError(f"{path}: {member!r} (in group {group!r}) is not one of emotions.txt's labels.")
        matrix[self.emotions.index(member), group_names.index(group)] = 1.0
    ungrouped = [name for name, row in zip(self.emotions, matrix) if row.sum() != 1]
    if ungrouped:
      raise ValueError(f"{path}: every emotion must be in exactly one group; not so for {ungrouped}.")
    return matrix

  def names(self, label_space: str) -> tuple[str, ...]:
    if label_space not in LABEL_SPACES:
      raise ValueError(f"config.data.label_space={label_space!r}; expected one of {LABEL_SPACES}.")
    return {"goemotions28": self.emotions, "ekman": labels_lib.EKMAN7, "sentiment": SENTIMENTS}[label_space]

  def project(self, multi_hot_28: np.ndarray, label_space: str) -> np.ndarray:
    """28-label multi-hot (or 0/1 predictions) -> multi-hot over `label_space`: a group is on if any member is."""
    self.names(label_space)
    if label_space == "goemotions28":
      return np.asarray(multi_hot_28, np.float32)
    return (np.asarray(multi_hot_28, np.float32) @ self.groupings[label_space] > 0).astype(np.float32)

  def sentiment_distribution(self, multi_hot_28: np.ndarray) -> np.ndarray:
    """The share of a row's labels in each sentiment: the soft target of the sentiment head."""
    counts = np.asarray(multi_hot_28, np.float32) @ self.groupings["sentiment"]
    return counts / np.maximum(counts.sum(-1, keepdims=True), 1.0)


def read_rows(path: Path, num_labels: int) -> tuple[list[str], np.ndarray, list[str], list[str]]:
  """(texts, 28-label multi-hot [N, num_labels], comment ids, skipped-row descriptions) of one TSV."""
  texts, multi_hot, ids, skipped = [], [], [], []
  with open(path, encoding="utf-8", newline="") as f:
    for line_number, line in enumerate(f, 1):
      fields = line.rstrip("\r\n").split("\t")
      where = f"{path.name}:{line_number}"
      if len(fields) != 3:
        skipped.append(f"{where}: {len(fields)} tab-separated fields, expected 3 (text, label ids, comment id)")
        continue
      text, label_field, comment_id = fields
      try:
        label_ids = [int(x) for x in label_field.split(",")]
      except ValueError:
        skipped.append(f"{where}: label ids {label_field!r} are not comma-separated integers")
        continue
      if any(not 0 <= i < num_labels for i in label_ids):
        skipped.append(f"{where}: label ids {label_field!r} outside 0..{num_labels - 1}")
        continue
      if not text.strip():
        skipped.append(f"{where}: empty text")
        continue
      row = np.zeros(num_labels, np.float32)
      row[label_ids] = 1.0
      texts.append(text)
      multi_hot.append(row)
      ids.append(comment_id)
  return texts, np.asarray(multi_hot, np.float32).reshape(-1, num_labels), ids, skipped


def load(root: str | os.PathLike, split: str, label_space: str = "goemotions28", tfds_dir: str = "") -> Dataset:
  """One split as a multi-label `Dataset` of raw texts; `emojax.data.text` tokenizes it.

  arrays: `text` (str), `id` (comment id), `labels` [N, C] multi-hot over `label_space`,
  `labels_28` [N, 28], `sentiment` [N, 4] soft sentiment target.
  With `tfds_dir`, rows come from the array_record files `emojax.data.tfds_builders` prepared there
  (the TSV need not be present); `root` still provides emotions.txt and the groupings.
  """
  root = Path(root).expanduser()
  if split not in SPLIT_FILES:
    raise ValueError(f"Unknown GoEmotions split {split!r}; expected one of {sorted(SPLIT_FILES)}.")
  path = root / SPLIT_FILES[split]
  if not tfds_dir and not path.is_file():
    raise FileNotFoundError(f"{path} is missing. {LAYOUT_HELP}")
  spaces = LabelSpaces(root)
  names = spaces.names(label_space)
  if tfds_dir:
    from emojax.data import prepared  # imports tensorflow_datasets only when asked for

    texts, multi_hot_28, ids = prepared.load_goemotions(tfds_dir, split)
    skipped = []  # rows were skipped, counted and logged when the files were prepared
  else:
    texts, multi_hot_28, ids, skipped = read_rows(path, len(spaces.emotions))
  report_skipped(skipped, f"GoEmotions {split} rows")
  if not texts:
    raise ValueError(f"{path} holds no usable rows ({len(skipped)} skipped). {LAYOUT_HELP}")
  return Dataset(
    arrays={
      "text": np.asarray(texts, dtype=object),
      "id": np.asarray(ids, dtype=object),
      "labels": spaces.project(multi_hot_28, label_space),
      "labels_28": multi_hot_28,
      "sentiment": spaces.sentiment_distribution(multi_hot_28),
    },
    class_names=names,
    skipped=skipped,
    model_inputs=("labels", "sentiment"),
    multi_label=True,
    metadata={
      "groupings": {space: (spaces.names(space), spaces.groupings[space]) for space in spaces.groupings},
      "sentiment_names": SENTIMENTS,
    },
  )


def load_tokenized(config, split: str) -> Dataset:
  """`load` + tokens (`input_ids`, `attention_mask`) + optional lexicon features: what the trainer reads.

  `config` is `config.data`: root, label_space, tokenizer, max_length, lexicon, cache_dir, max_examples and
  tfds_dir (rows from the array_record files `emojax.data.tfds_builders` prepared, instead of the TSVs).
  """
  from emojax.data import text

  dataset = load(config.root, split, config.label_space, tfds_dir=config.get("tfds_dir", ""))
  arrays = dict(dataset.arrays)
  if config.max_examples > 0 and len(dataset) > config.max_examples:  # smoke runs: a seeded sample of rows
    keep = np.sort(np.random.default_rng(0).permutation(len(dataset))[: config.max_examples])
    arrays = {k: v[keep] for k, v in arrays.items()}
  arrays.update(text.tokenize(arrays["text"], config.tokenizer, config.max_length))
  inputs = ("input_ids", "attention_mask") + dataset.model_inputs
  if config.lexicon:
    arrays["lexicon"] = text.lexicon_features(arrays["text"], config.cache_dir)
    inputs += ("lexicon",)
  return Dataset(
    arrays=arrays,
    class_names=dataset.class_names,
    skipped=dataset.skipped,
    model_inputs=inputs,
    multi_label=True,
    metadata=dataset.metadata,
  )


def ekman_matrix(root: str, names=None) -> np.ndarray:
  """[28, 7] 0/1 membership of GoEmotions' labels in the Ekman-7 groups (EKMAN7 order), from the release's
  `ekman_mapping.json` (read and checked by `LabelSpaces`); `names`, if given, must be the 28 labels
  in `emotions.txt` order (an export's class names), so a matrix is never applied to another label order."""
  spaces = LabelSpaces(root)
  if names is not None and tuple(names) != spaces.emotions:
    raise ValueError(f"Classes {tuple(names)} are not emotions.txt's {spaces.emotions}.")
  return spaces.groupings["ekman"]
