"""Multimodal examples for fusion: one face, one utterance and one text per example, in Ekman-7.

The public corpora here are not aligned: no dataset holds the same moment as a face, an utterance and a
sentence. So examples are *label-matched tuples*: for each Ekman class, the examples of every modality that
carry that class (and only that class) are shuffled with the seed and paired up, the shorter lists cycled,
until every example of the largest modality is used once (`max_per_class` caps that). Train tuples come
only from the train splits, validation tuples only from the validation splits. A fused model can therefore
learn how to weigh the modalities' evidence, but not any cross-modal correlation beyond the shared label:
read fused gains as "several independent views of the class", not as multimodal understanding.

Each modality enters as the export of its trained encoder (`python -m emojax.main ... --mode=export`:
`export/<split>.npz` with `embedding`, `logits`, labels). Truly aligned data (one row = one moment with
all three) needs no pairing: give `aligned=True` and exports whose rows correspond one to one.

The synthetic source (`name="multimodal_synthetic"`) draws class-dependent embeddings and logits for
three modalities of different reliability, so the demo and tests exercise fusion without trained encoders.
"""

import os
from pathlib import Path

import numpy as np

from emojax.data import labels as labels_lib
from emojax.data.base import Dataset

MODALITIES = ("face", "speech", "text")


def ekman_view(export: dict, goemotions_root: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(label [N] in Ekman-7, -1 where a row has no single Ekman class; logits [N, 7]; embedding) of one export.

  Single-label exports must already be in Ekman-7 order (FER2013, speech with labels=ekman7). A GoEmotions
  export (multi-label, 28 or Ekman labels) becomes single-label on rows with exactly one Ekman group; its
  7-way distribution is each group's best member probability, normalised.
  """
  names = tuple(str(n) for n in export["class_names"])
  if "label" in export:
    if names != labels_lib.EKMAN7:
      raise ValueError(f"An export with classes {names} is not in Ekman-7 order {labels_lib.EKMAN7}; train the "
                       "encoder with Ekman labels (FER2013; speech with labels=ekman7).")
    return np.asarray(export["label"]).astype(np.int64), np.asarray(export["logits"]), np.asarray(export["embedding"])
  probabilities = 1 / (1 + np.exp(-np.asarray(export["logits"], np.float64)))
  if names == labels_lib.EKMAN7:
    group_probabilities, groups = probabilities, np.asarray(export["labels"]) > 0.5
  else:
    matrix = _ekman_matrix(names, goemotions_root)
    members = matrix.astype(bool)
    group_probabilities = np.stack([probabilities[:, members[:, g]].max(1) for g in range(7)], 1)
    groups = (np.asarray(export["labels_28"] if "labels_28" in export else export["labels"]) @ matrix) > 0
  single = groups.sum(1) == 1
  label = np.where(single, groups.argmax(1), -1)
  distribution = group_probabilities / group_probabilities.sum(1, keepdims=True)
  return label, np.log(np.clip(distribution, 1e-9, 1)).astype(np.float32), np.asarray(export["embedding"])


def _ekman_matrix(names, goemotions_root: str) -> np.ndarray:
  """[28, 7] membership of the 28 GoEmotions labels in the Ekman groups, from the release's own files."""
  from emojax.data.goemotions import LabelSpaces
  spaces = LabelSpaces(goemotions_root)
  if tuple(names) != spaces.emotions:
    raise ValueError(f"The export's classes {tuple(names)} are not emotions.txt's {spaces.emotions}.")
  return spaces.groupings["ekman"]


def label_matched_indices(labels_by_modality: dict[str, np.ndarray], seed: int, max_per_class: int = 0):
  """{modality: row index per tuple (-1 = absent)} and the tuple labels, pairing rows of equal label.

  Per class, as many tuples as the modality with most rows of that class has (capped by `max_per_class`);
  every modality's rows of the class are shuffled and cycled to that length; a modality with no row of the
  class is absent from those tuples.
  """
  rng = np.random.default_rng(seed)
  indices = {m: [] for m in labels_by_modality}
  tuple_labels = []
  for label in range(len(labels_lib.EKMAN7)):
    rows = {m: np.flatnonzero(np.asarray(y) == label) for m, y in labels_by_modality.items()}
    count = max(len(r) for r in rows.values())
    if max_per_class > 0:
      count = min(count, max_per_class)
    if count == 0:
      continue
    for m, r in rows.items():
      if len(r) == 0:
        indices[m].append(np.full(count, -1))
      else:
        order = rng.permutation(r)
        indices[m].append(np.resize(order, count))  # cycles the shorter lists
    tuple_labels.append(np.full(count, label))
  return {m: np.concatenate(v) for m, v in indices.items()}, np.concatenate(tuple_labels).astype(np.int32)


def tuples_dataset(views: dict[str, tuple], split: str, seed: int, max_per_class: int = 0,
                   aligned: bool = False) -> Dataset:
  """A fusion `Dataset` from per-modality (label, logits, embedding) views of one split."""
  modalities = tuple(views)
  absent = [m for m in modalities if views[m] is None]  # no source: absent from every example
  views = {m: v for m, v in views.items() if v is not None}
  if not views:
    raise ValueError("No modality has a source: set config.data.sources.<modality> to an export folder.")
  if aligned:
    lengths = {m: len(v[0]) for m, v in views.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"aligned=True needs exports with the same rows; row counts differ: {lengths}.")
    label = next(iter(views.values()))[0]  # aligned rows share one label; the first source's is used
    index = {m: np.where(views[m][0] >= 0, np.arange(len(label)), -1) for m in views}
    keep = label >= 0
    index, label = {m: i[keep] for m, i in index.items()}, label[keep].astype(np.int32)
  else:
    # Split-specific seed: train and validation tuples never share a pairing pattern.
    index, label = label_matched_indices({m: v[0] for m, v in views.items()}, seed + (split != "train"),
                                         max_per_class)
  for m in absent:
    index[m] = np.full(len(label), -1)
    views[m] = (None, np.zeros((1, len(labels_lib.EKMAN7)), np.float32), np.zeros((1, 1), np.float32))
  arrays = {"label": label, "present": np.stack([index[m] >= 0 for m in modalities], 1).astype(np.float32)}
  for m in modalities:
    _, logits, embedding = views[m]
    rows = np.maximum(index[m], 0)
    arrays[f"{m}_embedding"] = np.where(index[m][:, None] >= 0, embedding[rows], 0).astype(np.float32)
    arrays[f"{m}_logits"] = np.where(index[m][:, None] >= 0, logits[rows], 0).astype(np.float32)
    arrays[f"{m}_row"] = index[m]
  arrays["id"] = np.array([f"{split}_{i}" for i in range(len(label))])
  inputs = ("label", "present") + tuple(f"{m}_{k}" for m in modalities for k in ("embedding", "logits"))
  return Dataset(arrays, class_names=labels_lib.EKMAN7, model_inputs=inputs)


def load(config, split: str) -> Dataset:
  """`config.data`: sources {modality: export folder, "" = absent}, goemotions_root, seed, max_per_class, aligned."""
  views = {}
  for modality, folder in config.sources.items():
    if not folder:
      views[modality] = None
      continue
    path = Path(os.path.expanduser(folder)) / f"{split}.npz"
    if not path.is_file():
      raise FileNotFoundError(f"No {path} for modality {modality!r}: export the trained encoder first with "
                              f"`python -m emojax.main --config <its config> --workdir <its run> --mode=export`.")
    with np.load(path, allow_pickle=False) as export:
      views[modality] = ekman_view(dict(export), config.goemotions_root)
  size = config.max_per_class_train if split == "train" else config.max_per_class_eval
  return tuples_dataset(views, split, config.seed, size, config.aligned)


def synthetic(split: str, num_examples: int, seed: int = 0, dims=(32, 24, 48), noise=(3.0, 4.0, 3.5)) -> Dataset:
  """Three modalities whose embeddings are class prototypes plus noise of different strength (so fusion has
  something to weigh), with logits from a noisy linear read-out of each, and 20% of modalities missing."""
  rng = np.random.default_rng([seed, {"train": 0, "validation": 1, "test": 2}[split]])
  label = rng.integers(7, size=num_examples).astype(np.int32)
  arrays = {"label": label, "present": (rng.random((num_examples, 3)) > 0.2).astype(np.float32)}
  arrays["present"][arrays["present"].sum(1) == 0, 0] = 1
  for m, dim, scale in zip(MODALITIES, dims, noise):
    prototypes = np.random.default_rng([seed, dim]).standard_normal((7, dim))  # the same for every split
    embedding = prototypes[label] + scale * rng.standard_normal((num_examples, dim))
    arrays[f"{m}_embedding"] = embedding.astype(np.float32)
    arrays[f"{m}_logits"] = (embedding @ prototypes.T / dim * 4).astype(np.float32)
  arrays["id"] = np.array([f"synthetic_{split}_{i}" for i in range(num_examples)])
  inputs = ("label", "present") + tuple(f"{m}_{k}" for m in MODALITIES for k in ("embedding", "logits"))
  return Dataset(arrays, class_names=labels_lib.EKMAN7, model_inputs=inputs)
