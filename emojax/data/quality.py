"""Data-quality switches applied as a split is read: train<->evaluation copies and class balance.

What `emojax explore` finds can be acted on from the config (every config has these fields, added by
`config_utils.add_data_quality`):

* `config.data.drop_duplicates`:
  - "none" (default): nothing is dropped.
  - "from_train": training rows that are exact copies of an evaluation-split row are dropped; the evaluation
    split stays whole, so its figures stay comparable with earlier runs and the model never trained on them.
  - "from_validation": evaluation-split rows that copy a training row are dropped; for FER2013 what is left is
    exactly the `without_train_duplicates` subset the evaluator reports.
  Copies are found by one mechanism everywhere (`row_keys`): images and clips by FER2013's pixel hash (the one
  `fer2013.load(mark_train_duplicates=True)` marks the subset with, and `emojax explore` groups by), texts by
  their exact string.
* `config.data.class_balance` (training split only):
  - "none" (default).
  - "resample": training rows repeated so every class has as many rows as the largest one (random
    oversampling; nothing is thrown away, an epoch gets longer). The repeats are a fixed index list drawn once
    from `config.data.class_balance_seed`, so the training stream stays a pure function of (seed, step) and the
    grain and on-device pipelines both see the same rows.
  - "reweight": class weights N / (C * n_c) in the training cross-entropy (`losses.make_loss` reads them from
    the train split's `metadata["class_weights"]`); the evaluation loss stays unweighted.
  Multi-label data (GoEmotions) has its own per-label weighting: `config.train.class_weight_power`.

What was done is recorded in `Dataset.metadata["data_quality"]` (what was dropped, the ids, how many of them
carried another label than their copy, class counts before and after), for the run's report.
"""

import dataclasses
from typing import Callable

import numpy as np

from emojax.data.base import Dataset

DROP_DUPLICATES = ("none", "from_train", "from_validation")
CLASS_BALANCE = ("none", "resample", "reweight")


def settings(config) -> tuple[str, str]:
  """(drop_duplicates, class_balance) of `config.data`, checked; configs without the fields mean "none"."""
  drop, balance = config.get("drop_duplicates", "none"), config.get("class_balance", "none")
  if drop not in DROP_DUPLICATES:
    raise ValueError(
      f"config.data.drop_duplicates={drop!r}; choose one of {DROP_DUPLICATES} (from_train drops "
      "training rows that copy an evaluation row, from_validation the evaluation rows that copy a "
      "training row)."
    )
  if balance not in CLASS_BALANCE:
    raise ValueError(f"config.data.class_balance={balance!r}; choose one of {CLASS_BALANCE}.")
  return drop, balance


def row_keys(dataset: Dataset) -> list:
  """One hashable key per row such that two rows are exact copies iff their keys are equal.

  Images and clips: FER2013's pixel hash, the one its validation subset `without_train_duplicates` is built
  with; texts: the raw string. Other data (speech features, fusion tuples) has no notion of a copy here.
  """
  from emojax.data import fer2013  # the data layer's one pixel hash

  for key in ("image", "clip"):
    if key in dataset.arrays:
      return [fer2013._pixel_hash(row) for row in dataset.arrays[key]]
  if "text" in dataset.arrays:
    return [str(text) for text in dataset.arrays["text"]]
  raise ValueError(
    f"config.data.drop_duplicates needs image, clip or text rows to compare; this dataset has "
    f"{sorted(dataset.arrays)}. Set config.data.drop_duplicates='none' for it."
  )


def label_rows(dataset: Dataset) -> np.ndarray:
  """[N] class ids, or [N, C] multi-hot for multi-label data: what "the same label" compares."""
  if "label" in dataset.arrays:
    return np.asarray(dataset.arrays["label"])
  if "labels_28" in dataset.arrays:
    return np.asarray(dataset.arrays["labels_28"])
  return np.asarray(dataset.arrays["labels"])


def copies_of(dataset: Dataset, other: Dataset) -> tuple[np.ndarray, np.ndarray]:
  """(copied, other_label): per row of `dataset`, whether `other` holds an exact copy of it, and whether one of
  those copies carries another label."""
  other_labels = label_rows(other)
  by_key: dict = {}
  for row, key in enumerate(row_keys(other)):
    by_key.setdefault(key, []).append(row)
  labels = label_rows(dataset)
  copied = np.zeros(len(dataset), bool)
  other_label = np.zeros(len(dataset), bool)
  for row, key in enumerate(row_keys(dataset)):
    matches = by_key.get(key)
    if matches:
      copied[row] = True
      other_label[row] = any(not np.array_equal(labels[row], other_labels[match]) for match in matches)
  return copied, other_label


def take(dataset: Dataset, rows: np.ndarray) -> Dataset:
  """The dataset restricted to (or repeated along) `rows`, evaluation subsets included."""
  return dataclasses.replace(
    dataset,
    arrays={k: np.asarray(v)[rows] for k, v in dataset.arrays.items()},
    eval_subsets={k: np.asarray(v)[rows] for k, v in dataset.eval_subsets.items()},
  )


def with_metadata(dataset: Dataset, **metadata) -> Dataset:
  return dataclasses.replace(dataset, metadata={**dataset.metadata, **metadata})


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
  return np.bincount(np.asarray(labels, np.int64), minlength=num_classes)


def resample_rows(labels: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
  """Row indices (sorted) in which every present class appears as often as the largest one.

  Each row of class c is repeated floor(target / n_c) times and a seeded draw without replacement of
  the class's rows makes up the remainder: every row appears, and no row twice more often than another.
  """
  labels = np.asarray(labels)
  counts = class_counts(labels, num_classes)
  target = counts.max()
  rng = np.random.default_rng(seed)
  rows = []
  for label in range(num_classes):
    members = np.flatnonzero(labels == label)
    if members.size == 0:
      continue
    repeats, remainder = divmod(int(target), members.size)
    rows += [np.repeat(members, repeats), rng.choice(members, remainder, replace=False)]
  return np.sort(np.concatenate(rows))


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """N / (C * n_c) per class (sklearn's "balanced"): the mean weight over the training rows is 1."""
  counts = class_counts(labels, num_classes)
  present = counts > 0
  weights = np.zeros(num_classes, np.float32)
  weights[present] = len(labels) / (present.sum() * counts[present])
  return weights


def apply(dataset: Dataset, config, split: str, read_split: Callable[[str], Dataset]) -> Dataset:
  """`dataset` (split `split` of `config`, i.e. `config.data`) after the configured switches.

  `read_split(name)` reads another split of the same data without these switches (the copies are found
  against it).
  """
  drop, balance = settings(config)
  record: dict = {"split": split, "rows_read": len(dataset)}
  fields_before = len(record)
  eval_split = config.get("eval_split", "validation")
  is_train = split == "train"
  if (drop == "from_train" and is_train) or (drop == "from_validation" and not is_train):
    if eval_split == "train":
      raise ValueError(
        "config.data.drop_duplicates compares the train split with config.data.eval_split, "
        "which is 'train' here; set eval_split to the evaluation split."
      )
    other_split = eval_split if is_train else "train"
    copied, other_label = copies_of(dataset, read_split(other_split))
    ids = dataset.arrays.get("id", np.arange(len(dataset)))
    record.update(
      drop_duplicates=drop,
      compared_with=other_split,
      dropped=int(copied.sum()),
      dropped_with_other_label=int(other_label.sum()),
      dropped_ids=[str(i) for i in np.asarray(ids)[copied]],
    )
    dataset = take(dataset, np.flatnonzero(~copied))
  if balance != "none" and is_train:
    if dataset.multi_label:
      raise ValueError(
        f"config.data.class_balance={balance!r} is for single-label data; multi-label data such "
        "as GoEmotions weights its labels with config.train.class_weight_power instead."
      )
    labels = np.asarray(dataset.arrays["label"])
    before = class_counts(labels, dataset.num_classes)
    record.update(class_balance=balance, class_counts_before=before.tolist())
    if balance == "resample":
      seed = int(config.get("class_balance_seed", 0))
      dataset = take(dataset, resample_rows(labels, dataset.num_classes, seed))
      record.update(
        class_balance_seed=seed, class_counts_after=class_counts(dataset.arrays["label"], dataset.num_classes).tolist()
      )
    else:
      weights = balanced_class_weights(labels, dataset.num_classes)
      record["class_weights"] = [round(float(w), 6) for w in weights]
      dataset = with_metadata(dataset, class_weights=weights)
  if len(record) == fields_before:  # nothing applied to this split
    return dataset
  record["rows"] = len(dataset)
  return with_metadata(dataset, data_quality=record)
