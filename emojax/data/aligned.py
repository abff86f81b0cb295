"""Truly aligned multimodal sets: every modality of an example records the same moment.

The label-matched tuples of `multimodal.py` pair a FER2013 face, a RAVDESS utterance and a GoEmotions comment
that share only their label. Here an example is one recording or one utterance seen through several modalities:

* `ravdess_av.py`: OpenFace action units of a RAVDESS speech video and the audio of the same recording
  (`config.data.name = "multimodal_ravdess_av"`; the face alone: `"ravdess_av"`).
* `mosi.py`: CMU-MOSI text, audio and video features and the transcript of the same utterance
  (`"multimodal_mosi"`; one modality alone: `"mosi"`).

A set's reader reads each modality into a `Dataset` of its own whose `id` names the moment, and `join` builds the
fusion dataset: one example per moment that any configured modality has, `present` [N, M] saying which ones it
has (a missing half is counted, and the example keeps what it has), each modality's inputs gathered from its own
rows (`multimodal.TupleDataset`, so the device and grain pipelines and `EncoderFusion` take it as they take
label-matched tuples). Labels are the set's own (RAVDESS 8 classes or Ekman-7, MOSI negative / positive): the
fusion model's class count comes from the data, and nothing assumes Ekman-7.

A modality enters either as raw inputs read by an encoder inside the fusion model (feature vectors, speech frames,
transcript tokens) or as the outputs of a frozen encoder run (`export_source`: `embedding` and `logits` of
`<run>/export/<split>.npz`, matched by id), which the `features.exported` encoder passes on unchanged.

Feature vectors are standardised inside their encoder (`models.feature_encoders.FeatureMLP`) with the mean and
standard deviation of the training split: every split's reader computes them from the training rows
(`vector_statistics`) and hands them to the model through `metadata["model_kwargs"]`.

`utterance_context` turns per-utterance examples into the input of the utterance-context graph
(`models.context_graph`): each example carries its whole video, stored once per video.
"""

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from emojax.data.base import Dataset, report_skipped
from emojax.data.multimodal import TupleDataset, presence


def check_modalities(modalities, known: tuple[str, ...], set_name: str) -> tuple[str, ...]:
  modalities = tuple(modalities)
  unknown = [m for m in modalities if m not in known]
  if not modalities or unknown or len(set(modalities)) != len(modalities):
    raise ValueError(f"config.data.modalities={modalities} for {set_name}: name each modality once, from {known}.")
  return modalities


def split_rows(groups: np.ndarray, split: str, validation_groups, set_name: str, group_kind: str) -> np.ndarray:
  """Boolean [N]: the rows of `split` ("train", "validation", or "all") when `validation_groups` are held out."""
  if split == "all":
    return np.ones(len(groups), bool)
  if split not in ("train", "validation"):
    raise ValueError(
      f"Unknown split {split!r} for {set_name}: it has 'train' and 'validation' (held-out "
      f"{group_kind}s carved from the released training data) and 'all'; its test part is not read."
    )
  held_out = np.isin(np.asarray(groups).astype(str), sorted(str(g) for g in validation_groups))
  if held_out.all() or not held_out.any():
    raise ValueError(
      f"The validation {group_kind}s {sorted(validation_groups)} leave the "
      f"{'train' if held_out.all() else 'validation'} split of {set_name} empty."
    )
  return held_out if split == "validation" else ~held_out


def vector_statistics(features: np.ndarray) -> dict:
  """{"input_mean", "input_std"} (tuples, for a Flax attribute) of training feature vectors [N, D]; a constant
  column gets std 1, so it standardises to 0 instead of dividing by zero."""
  features = np.asarray(features, np.float64)
  std = features.std(0)
  return {
    "input_mean": tuple(float(v) for v in features.mean(0)),
    "input_std": tuple(float(v) if v > 1e-8 else 1.0 for v in std),
  }


def export_source(run: str, split: str, class_names, modality: str) -> Dataset:
  """A frozen encoder's outputs on `split`: `<run>/export/<split>.npz` (`python -m emojax.main ... --mode=export`)
  as a Dataset of `embedding`, `logits`, `label` and `id`, its classes checked against the set's."""
  path = Path(os.path.expanduser(run)) / "export" / f"{split}.npz"
  if not path.is_file():
    raise FileNotFoundError(
      f"No {path} for modality {modality!r}: train that encoder run and export it "
      f"(python -m emojax.main --config <its config> --workdir {run} --mode=export), or leave "
      f"config.data.exports.{modality} empty to read the modality's raw inputs."
    )
  with np.load(path, allow_pickle=False) as export:
    export = dict(export)
  names = tuple(str(n) for n in export["class_names"])
  if names != tuple(class_names):
    raise ValueError(
      f"{path} predicts {names}, but this set's classes are {tuple(class_names)}: train the "
      f"{modality} encoder in the same label space (e.g. labels=ekman7 for both)."
    )
  if "label" not in export:
    raise ValueError(f"{path} has no single-label `label` column; aligned fusion reads single-label encoder runs.")
  return Dataset(
    {
      "embedding": export["embedding"].astype(np.float32),
      "logits": export["logits"].astype(np.float32),
      "label": export["label"].astype(np.int32),
      "id": export["id"].astype(str),
    },
    class_names=names,
    model_inputs=("embedding", "logits"),
  )


def join(
  sources: Mapping[str, Dataset],
  class_names,
  split: str,
  set_name: str,
  groups: Mapping[str, str],
  extra: Mapping[str, Mapping[str, object]] | None = None,
  encoder_kwargs: Mapping | None = None,
  skipped: list[str] | None = None,
) -> TupleDataset:
  """The fusion examples of one split from per-modality Datasets that name their moments by `id`.

  One example per id that any source has, in the order the sources first list them; `{m}_row` is the id's row in
  modality m's source, -1 where it has none (`present` 0: the example keeps what it has, and the count of
  each missing modality is logged and kept in `metadata["missing"]`). An id whose modalities disagree on the
  label is skipped and named. `groups` gives each id's speaker or video (column `group`, for grouped folds),
  `extra` any further per-id host columns (an utterance's `position`).
  """
  skipped = list(skipped or [])
  modalities = tuple(sources)
  order, rows = [], {m: {} for m in modalities}
  for m, data in sources.items():
    for row, key in enumerate(np.asarray(data.arrays["id"]).astype(str)):
      if key in rows[m]:
        skipped.append(f"{set_name} {split}: {m} has two rows for {key!r}; the second is ignored")
        continue
      if not any(key in rows[other] for other in modalities):
        order.append(key)
      rows[m][key] = row
  labels, kept = [], []
  for key in order:
    found = {m: int(sources[m].arrays["label"][rows[m][key]]) for m in modalities if key in rows[m]}
    if len(set(found.values())) > 1:
      skipped.append(f"{set_name} {split}: {key!r} has labels {found} in its modalities; skipped")
      continue
    kept.append(key)
    labels.append(next(iter(found.values())))
  if not kept:
    raise ValueError(f"No {set_name} {split} examples: none of {modalities} has a row in this split.")
  index = {m: np.array([rows[m].get(key, -1) for key in kept], np.int64) for m in modalities}
  missing = {m: int((index[m] < 0).sum()) for m in modalities}
  arrays = {
    "label": np.array(labels, np.int32),
    "present": presence(index, modalities),
    "id": np.array(kept),
    "group": np.array([groups[key] for key in kept]),
    **{f"{m}_row": index[m] for m in modalities},
  }
  for column, values in (extra or {}).items():
    arrays[column] = np.array([values[key] for key in kept])
  report_skipped(skipped, f"{set_name} {split} rows")
  logging.info(
    "%s %s: %d examples; missing %s (each keeps the modalities it has)",
    set_name,
    split,
    len(kept),
    ", ".join(f"{m} {n}" for m, n in missing.items()) or "nothing",
  )
  metadata = {"missing": missing, "model_kwargs": {"encoder_kwargs": dict(encoder_kwargs or {})}}
  return TupleDataset(arrays, class_names=tuple(class_names), sources=dict(sources), skipped=skipped, metadata=metadata)


def utterance_context(data: TupleDataset, max_utterances: int = 0) -> TupleDataset:
  """Per-utterance examples -> the same examples, each carrying its whole video (`models.context_graph`).

  Every modality's source becomes one row per video: its inputs [V, U, ...] over the video's U utterance slots in
  order of `position` (zeros past its end), and `present` [V, U] (1 where that utterance has the modality); every
  example's `{m}_row` is its video's row. The extra source `utterance` holds each example's slot in its video
  (`utterance_position`). Videos are stored once, however many of their utterances are examples. An example's
  `present` [N, M] becomes the modalities its video has, and hiding one there (modality dropout, the robustness
  table) hides it in the whole video. `max_utterances` > 0 caps U: longer videos are cut into consecutive pieces
  of at most that many.
  """
  from emojax.models.context_graph import CONTEXT_SOURCE  # the model names the key; flax only loads here

  groups = np.asarray(data.arrays["group"]).astype(str)
  positions = np.asarray(data.arrays["position"])
  pieces = []  # lists of example indices in time order, one per video (or piece of one)
  for group in dict.fromkeys(groups):
    members = np.flatnonzero(groups == group)
    members = members[np.argsort(positions[members], kind="stable")]
    step = max_utterances if max_utterances > 0 else len(members)
    pieces += [members[i : i + step] for i in range(0, len(members), step)]
  slots = max(len(p) for p in pieces)
  piece_of, slot_of = np.zeros(len(data), np.int64), np.zeros(len(data), np.int32)
  for p, members in enumerate(pieces):
    piece_of[members], slot_of[members] = p, np.arange(len(members))
  sources = {}
  for m, source in data.sources.items():
    rows = np.asarray(data.arrays[f"{m}_row"])
    arrays = {}
    for key in data.input_keys[m]:
      values = np.asarray(source.arrays[key])
      stacked = np.zeros((len(pieces), slots) + values.shape[1:], values.dtype)
      for p, members in enumerate(pieces):
        have = rows[members] >= 0
        stacked[p, np.flatnonzero(have)] = values[rows[members][have]]
      arrays[key] = stacked
    arrays["present"] = np.zeros((len(pieces), slots), np.float32)
    for p, members in enumerate(pieces):
      arrays["present"][p, : len(members)] = rows[members] >= 0
    sources[m] = Dataset(arrays, class_names=data.class_names, model_inputs=tuple(arrays))
  if CONTEXT_SOURCE in sources:
    raise ValueError(f"A modality may not be named {CONTEXT_SOURCE!r}: the context dataset uses that name.")
  sources[CONTEXT_SOURCE] = Dataset({"position": slot_of}, class_names=data.class_names, model_inputs=("position",))
  arrays = {k: v for k, v in data.arrays.items() if not k.endswith("_row")}
  arrays["present"] = np.stack([sources[m].arrays["present"].any(1)[piece_of] for m in data.sources], 1).astype(
    np.float32
  )
  arrays.update({f"{m}_row": piece_of for m in data.sources}, **{f"{CONTEXT_SOURCE}_row": np.arange(len(data))})
  return TupleDataset(
    arrays,
    class_names=data.class_names,
    sources=sources,
    skipped=data.skipped,
    metadata={**data.metadata, "context_slots": slots},
  )
