"""Multimodal examples for fusion: one face, one utterance and one text per example, in Ekman-7.

The public corpora here are not aligned: no dataset holds the same moment as a face, an utterance and a
sentence. So examples are *label-matched tuples*: for each Ekman class, the examples of every modality that
carry that class (and only that class) are shuffled with the seed and paired up, the shorter lists cycled,
until every example of the largest modality is used once (`max_per_class` caps that). Train tuples come
only from the train splits, validation tuples only from the validation splits. A fused model can therefore
learn how to weigh the modalities' evidence, but not any cross-modal correlation beyond the shared label:
read fused gains as "several independent views of the class", not as multimodal understanding.

With `protocol="crossfit"` both come from the validation exports instead, split into folds (`crossfit_rows`).

Each modality enters as the export of its trained encoder (`python -m emojax.main ... --mode=export`:
`export/<split>.npz` with `embedding`, `logits`, labels). Truly aligned data (one row = one moment with
all three) needs no pairing: give `aligned=True` and exports whose rows correspond one to one. The aligned sets
RAVDESS-AV and CMU-MOSI have readers of their own (`aligned.py`: joined by recording or utterance, their own labels).

For end-to-end fusion (`name="multimodal_inputs"`, `load_inputs`) the same tuples carry each encoder's raw inputs
(image, frame features, tokens) instead of its outputs; `synthetic_inputs` is their built-in default.

The synthetic source (`name="multimodal_synthetic"`) draws class-dependent embeddings and logits for
three modalities of different reliability, so the demo and tests exercise fusion without trained encoders.
"""

import dataclasses
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from emojax import labels as labels_lib
from emojax.data import goemotions
from emojax.data.base import Dataset

MODALITIES = ("face", "speech", "text")


def ekman_view(export: dict, goemotions_root: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(label [N] in Ekman-7, -1 where a row has no single Ekman class; logits [N, 7]; embedding) of one export.

  Single-label exports must already be in Ekman-7 order (FER2013, speech with labels=ekman7). A GoEmotions
  export (multi-label, 28 or Ekman labels) becomes single-label on rows with exactly one Ekman group; its
  7-way distribution is each group's best member probability, normalised (`ekman_log_probabilities`).
  """
  names = tuple(str(n) for n in export["class_names"])
  if "label" in export:
    label = ekman_labels(names, np.asarray(export["label"]))
    return label, np.asarray(export["logits"]), np.asarray(export["embedding"])
  matrix = goemotions.ekman_matrix(goemotions_root, names) if names != labels_lib.EKMAN7 else None
  label = ekman_labels(names, np.asarray(export["labels"]), matrix)  # `labels` is in the export's own label space
  logits = labels_lib.ekman_log_probabilities(np.asarray(export["logits"], np.float64), matrix)
  return label, logits.astype(np.float32), np.asarray(export["embedding"])


def ekman_labels(names, labels, matrix=None) -> np.ndarray:
  """Ekman-7 class ids of a dataset's labels: class ids already in Ekman-7 order pass through; multi-hot rows
  ([N, K], grouped into Ekman by the [K, 7] `matrix`, or already Ekman-7) give their group where exactly one
  group is set, else -1 (such rows join no tuple)."""
  names = tuple(names)
  labels = np.asarray(labels)
  if labels.ndim == 1:
    require_ekman7(names)
    return labels.astype(np.int64)
  groups = (labels @ matrix) > 0 if matrix is not None else labels > 0.5
  return np.where(groups.sum(1) == 1, groups.argmax(1), -1)


def require_ekman7(names) -> None:
  """Single-label classes must already be Ekman-7, in its order: there is nothing to map them through."""
  if tuple(names) != labels_lib.EKMAN7:
    raise ValueError(
      f"Classes {tuple(names)} are not in Ekman-7 order {labels_lib.EKMAN7}; train the encoder with "
      "Ekman labels (FER2013; speech with labels=ekman7)."
    )


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


def presence(index: dict[str, np.ndarray], modalities) -> np.ndarray:
  """[N, M] float 0/1: whether tuple n has a row of modality m (`index[m][n] >= 0`)."""
  return np.stack([index[m] >= 0 for m in modalities], 1).astype(np.float32)


def draw_presence(rng: np.random.Generator, num_examples: int, missing: float = 0.2) -> np.ndarray:
  """[N, 3] float 0/1 for the synthetic sets: each modality missing with probability `missing`, never all three
  (an example with none keeps its face)."""
  present = (rng.random((num_examples, 3)) > missing).astype(np.float32)
  present[present.sum(1) == 0, 0] = 1
  return present


def tuples_dataset(
  views: dict[str, tuple], split: str, seed: int, max_per_class: int = 0, aligned: bool = False
) -> Dataset:
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
    index, label = label_matched_indices({m: v[0] for m, v in views.items()}, seed + (split != "train"), max_per_class)
  for m in absent:
    index[m] = np.full(len(label), -1)
    views[m] = (None, np.zeros((1, len(labels_lib.EKMAN7)), np.float32), np.zeros((1, 1), np.float32))
  arrays = {"label": label, "present": presence(index, modalities)}
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
  """`config.data`: sources {modality: export folder, "" = absent}, goemotions_root, seed, max_per_class, aligned,
  protocol ("train", or "crossfit" with num_folds and fold: see `crossfit_rows`)."""
  protocol = config.get("protocol", "train")
  if protocol not in ("train", "crossfit"):
    raise ValueError(
      f"config.data.protocol={protocol!r}; expected 'train' (fusion learns on the train exports) or "
      "'crossfit' (on the other folds of the validation exports)."
    )
  views = {}
  for modality, folder in config.sources.items():
    if not folder:
      views[modality] = None
      continue
    export_split = config.eval_split if protocol == "crossfit" else split
    path = Path(os.path.expanduser(folder)) / f"{export_split}.npz"
    if not path.is_file():
      raise FileNotFoundError(
        f"No {path} for modality {modality!r}: export the trained encoder first with "
        f"`python -m emojax.main --config <its config> --workdir <its run> --mode=export`."
      )
    with np.load(path, allow_pickle=False) as export:
      export = dict(export)
    label, logits, embedding = ekman_view(export, config.goemotions_root)
    if protocol == "crossfit":
      in_fold = crossfit_rows(
        export.get("speaker", np.arange(len(label))), config.num_folds, config.fold, config.get("fold_seed", 0)
      )
      label = np.where(in_fold if split != "train" else ~in_fold, label, -1)  # -1: joins no tuple
    views[modality] = (label, logits, embedding)
  size = config.max_per_class_train if split == "train" else config.max_per_class_eval
  return tuples_dataset(views, split, config.seed, size, config.aligned)


def crossfit_rows(groups, num_folds: int, fold: int, seed: int = 0) -> np.ndarray:
  """Boolean [N]: the rows of `fold` when an export's rows are split into `num_folds` folds by group.

  Cross-fitted fusion (`protocol="crossfit"`) learns on the validation exports, never on the train exports:
  an encoder is over-confident on the rows it was trained on, so a fusion model fitted there learns to trust
  whichever encoder over-fitted most. Instead, for each fold k the fusion model trains on tuples of the other
  folds' validation rows and predicts fold k's tuples; `--mode=crossfit` (emojax/crossfit.py) runs every fold
  and scores the pooled out-of-fold predictions. Rows of one group (a speaker) stay in one fold, so no voice is both
  fitted and scored; rows without groups are their own group.
  """
  if not 0 <= fold < num_folds:
    raise ValueError(f"config.data.fold={fold} must be in [0, num_folds={num_folds}).")
  names, group = np.unique(np.asarray(groups).astype(str), return_inverse=True)
  fold_of_group = np.random.default_rng([seed, len(names)]).permutation(len(names)) % num_folds
  return fold_of_group[group] == fold


def synthetic(split: str, num_examples: int, seed: int = 0, dims=(32, 24, 48), noise=(3.0, 4.0, 3.5)) -> Dataset:
  """Three modalities whose embeddings are class prototypes plus noise of different strength (so fusion has
  something to weigh), with logits from a noisy linear read-out of each, and 20% of modalities missing."""
  rng = np.random.default_rng([seed, {"train": 0, "validation": 1, "test": 2}[split]])
  label = rng.integers(7, size=num_examples).astype(np.int32)
  arrays = {"label": label, "present": draw_presence(rng, num_examples)}
  for m, dim, scale in zip(MODALITIES, dims, noise):
    prototypes = np.random.default_rng([seed, dim]).standard_normal((7, dim))  # the same for every split
    embedding = prototypes[label] + scale * rng.standard_normal((num_examples, dim))
    arrays[f"{m}_embedding"] = embedding.astype(np.float32)
    arrays[f"{m}_logits"] = (embedding @ prototypes.T / dim * 4).astype(np.float32)
  arrays["id"] = np.array([f"synthetic_{split}_{i}" for i in range(num_examples)])
  inputs = ("label", "present") + tuple(f"{m}_{k}" for m in MODALITIES for k in ("embedding", "logits"))
  return Dataset(arrays, class_names=labels_lib.EKMAN7, model_inputs=inputs)


# ----------------------------------------------------------------------------------------------
# Raw inputs for end-to-end fusion: the same tuples, carrying each encoder's own inputs.
# ----------------------------------------------------------------------------------------------
LABEL_KEYS = ("label", "labels", "labels_28", "sentiment")


@dataclasses.dataclass
class TupleDataset(Dataset):
  """Label-matched tuples that gather each modality's *inputs* (image, features, tokens) on access.

  `arrays` holds only the per-tuple columns (label, present, id, `{m}_row`); example i is assembled from row
  `{m}_row[i]` of each modality's own `Dataset` in `sources`, its input keys prefixed `{m}_` (`face_image`,
  `text_input_ids`, ...), zeros where the modality is absent. Nothing is copied per tuple, so speech
  features or token arrays are stored once however often the pairing reuses them.
  """

  sources: Mapping[str, Dataset] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    super().__post_init__()
    # A speech run's augmented feature copies are training augmentation of that encoder, not fusion inputs.
    self.input_keys = {
      m: tuple(k for k in d.model_inputs if k not in LABEL_KEYS and not k.startswith("augmented_"))
      for m, d in self.sources.items()
    }
    self._zeros = {
      m: {k: np.zeros_like(np.asarray(d.arrays[k][0])) for k in self.input_keys[m]} for m, d in self.sources.items()
    }
    self.model_inputs = ("label", "present") + tuple(f"{m}_{k}" for m in self.sources for k in self.input_keys[m])

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    example = {k: v[index] for k, v in self.arrays.items()}
    for m, source in self.sources.items():
      row = int(self.arrays[f"{m}_row"][index])
      for key in self.input_keys[m]:
        example[f"{m}_{key}"] = source.arrays[key][row] if row >= 0 else self._zeros[m][key]
    return example


def encoder_label_map(dataset: Dataset):
  """How an encoder trained on `dataset` reaches Ekman-7: None (single-label, already Ekman-7 order) or the
  [K, 7] grouping of its K multi-label classes (as nested tuples, hashable for a Flax attribute), or "sigmoid"
  (multi-label over Ekman-7 itself)."""
  matrix = dataset.metadata["groupings"]["ekman"][1] if dataset.multi_label else None
  return label_map(dataset.class_names, dataset.multi_label, matrix)


def label_map(class_names, multi_label: bool, ekman_matrix=None):
  """`encoder_label_map` from a label space itself (class names, multi-label or not, the [K, 7] Ekman grouping of
  multi-label classes): what a bundle rebuilds an end-to-end fusion model with, without its encoders' data."""
  if not multi_label:
    require_ekman7(class_names)
    return None
  if tuple(class_names) == labels_lib.EKMAN7:
    return "sigmoid"
  return tuple(tuple(int(v) for v in row) for row in np.asarray(ekman_matrix))


def load_inputs(config, split: str, read) -> TupleDataset:
  """Tuples of raw inputs for end-to-end fusion (`config.data.name = "multimodal_inputs"`).

  `config.modalities.<m>` is the data config of modality m's encoder run (configs/multimodal.py copies it from
  the run's config.json), so each corpus is read exactly as its encoder was trained (`read`: the registry's
  `emojax.data.load_split`); pairing, seeds and caps are those of `load`, so the tuples are the very ones the
  export-based fusion runs see.
  """
  sources, labels, label_maps = {}, {}, {}
  for m, data_config in config.modalities.items():
    dataset = read(data_config, split)
    label_maps[m] = encoder_label_map(dataset)
    if dataset.multi_label:
      matrix = None if label_maps[m] == "sigmoid" else np.asarray(label_maps[m])
      labels[m] = ekman_labels(dataset.class_names, dataset.arrays["labels"], matrix)
    else:
      labels[m] = ekman_labels(dataset.class_names, dataset.arrays["label"])
    sources[m] = dataset
  if config.get("aligned", False):  # row i of every modality is one moment: no pairing
    lengths = {m: len(y) for m, y in labels.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"config.data.aligned=True needs modalities with the same rows; row counts differ: {lengths}.")
    label = next(iter(labels.values()))  # aligned rows share one label; the first modality's is used
    rows = np.flatnonzero(label >= 0)
    index, label = {m: rows for m in labels}, label[rows].astype(np.int32)
  else:
    size = config.max_per_class_train if split == "train" else config.max_per_class_eval
    index, label = label_matched_indices(labels, config.seed + (split != "train"), size)
  arrays = {
    "label": label,
    "present": presence(index, sources),
    "id": np.array([f"{split}_{i}" for i in range(len(label))]),
    **{f"{m}_row": index[m] for m in sources},
  }
  return TupleDataset(
    arrays, class_names=labels_lib.EKMAN7, sources=sources, metadata={"model_kwargs": {"label_maps": label_maps}}
  )


def synthetic_inputs(
  split: str, num_examples: int, seed: int = 0, frames: int = 40, mel_bins: int = 24, tokens: int = 12, vocab: int = 64
) -> Dataset:
  """The built-in multimodal default: a drawn face, a spectrogram-like feature sequence and a token sequence
  per example, all of one Ekman class, with 20% of the modalities missing. Faces are the synthetic face
  set's drawings; speech frames carry a class-specific band of energy under noise; texts draw a few tokens
  from a class-specific part of the vocabulary among uniform ones. For the demo and tests only."""
  from emojax.data import synthetic

  rng = np.random.default_rng([seed, {"train": 0, "validation": 1, "test": 2}[split], 7])
  label = rng.integers(7, size=num_examples).astype(np.int32)
  present = draw_presence(rng, num_examples)
  faces = np.stack([synthetic.draw_face(y, rng) for y in label])[..., None]
  bands = np.exp(-0.5 * ((np.arange(mel_bins)[None] - (2 + 3 * np.arange(7))[:, None]) / 1.5) ** 2)  # [7, bins]
  num_frames = rng.integers(frames // 2, frames + 1, num_examples).astype(np.int32)
  speech = 0.8 * bands[label][:, None] * rng.random((num_examples, frames, 1)) + rng.standard_normal(
    (num_examples, frames, mel_bins)
  )
  speech *= np.arange(frames)[None, :, None] < num_frames[:, None, None]
  length = rng.integers(tokens // 2, tokens + 1, num_examples)
  ids = rng.integers(8, vocab, (num_examples, tokens))
  cue = rng.random((num_examples, tokens)) < 0.3  # class words among filler
  ids = np.where(cue, 8 * label[:, None] + rng.integers(0, 8, (num_examples, tokens)) + 8, ids) % vocab
  mask = (np.arange(tokens)[None] < length[:, None]).astype(np.int32)
  ids = np.where(mask > 0, ids, 0)
  ids[:, 0] = 1  # a [CLS]-like first token
  arrays = {
    "label": label,
    "present": present,
    "face_image": faces.astype(np.uint8),
    "speech_features": speech.astype(np.float32),
    "speech_num_frames": num_frames,
    "text_input_ids": ids.astype(np.int32),
    "text_attention_mask": mask,
    "id": np.array([f"synthetic_inputs_{split}_{i}" for i in range(num_examples)]),
  }
  inputs = (
    "label",
    "present",
    "face_image",
    "speech_features",
    "speech_num_frames",
    "text_input_ids",
    "text_attention_mask",
  )
  return Dataset(
    arrays,
    class_names=labels_lib.EKMAN7,
    model_inputs=inputs,
    metadata={"model_kwargs": {"label_maps": {m: None for m in MODALITIES}}},
  )
