"""Scoring trained models on any labelled corpus the readers know, with training's reports.

    emojax evaluate --model bundles/ravdess_conformer --data tess --root /data/TESS --split all
    emojax evaluate --model bundles/fer_a --model bundles/fer_b --data fer2013 --root ../shared/data/fer2013

The corpus is read by its reader with the model's own preprocessing settings (the bundle's data config, with the
corpus's name and root), the model runs through the same bucketed `Recognizer` as `predict`, and the outputs are
scored by `metrics_lib.evaluate_outputs`: on the model's own corpus and split, the figures of its training run.
Several models are averaged (their class probabilities, as `--mode=ensemble` does).

When the corpus's label space differs from the model's (RAVDESS-trained speech on TESS or CREMA-D, FER2013-trained
faces on CK+, a GoEmotions model on another text corpus), both go through Ekman-7: the model's probabilities are
summed (single-label) or grouped (multi-label) into Ekman classes, the corpus's labels are mapped by name, and the
classes both reach are compared; the report's `label_mapping` says which, and how many rows had no compared
class. An image model on a clip corpus (CK+ as released) reads each clip's last real frame, CK+'s apex.
"""

import ast
import copy
import json
import logging
from pathlib import Path

import ml_collections
import numpy as np

from emojax import labels as labels_lib
from emojax import metrics as metrics_lib
from emojax import reports
from emojax.data import SPEECH_CORPORA, load_split
from emojax.data.base import Dataset
from emojax.inference.inputs import InputError

FAMILIES = {
  "face": ("fer2013", "synthetic", "clips", "synthetic_clips"),
  "speech": SPEECH_CORPORA,
  "text": ("goemotions", "labelled_text"),
}
# Datasets read from a folder (the synthetic ones are drawn and need no root).
READ_FROM_ROOT = ("fer2013", "clips", *SPEECH_CORPORA, "goemotions", "labelled_text")
# Fields a clip corpus needs that a face model's data config may lack (configs/face_cnn.py's defaults).
CLIP_DEFAULTS = {"clip_length": 8, "face_crop": "haar", "num_folds": 5, "fold": 0}


def family_of(name: str) -> str | None:
  return next((family for family, names in FAMILIES.items() if name in names), None)


def corpus_config(
  model_data: ml_collections.ConfigDict, name: str, root: str = "", overrides: dict | None = None
) -> ml_collections.ConfigDict:
  """The data config that reads corpus `name` at `root` the way the model's inputs were prepared: the model's own
  data config (features, audio, tokenizer, max length, ...) with the corpus's name, root and label settings."""
  config = ml_collections.ConfigDict(copy.deepcopy(model_data.to_dict()))
  if name != config.name:
    model_family, family = family_of(config.name), family_of(name)
    if family is None:
      raise InputError(
        f"--data {name}: not a corpus this command scores; use one of "
        f"{sorted(n for names in FAMILIES.values() for n in names)}."
      )
    if model_family != family:
      raise InputError(f"--data {name} is a {family} corpus; this model reads {model_family or config.name} inputs.")
    config.name = name
    if family == "speech":
      config.labels, config.speakers, config.validation_speakers = "native", (), ()
    if name == "clips":
      for key, value in CLIP_DEFAULTS.items():
        if key not in config:
          config[key] = value
    if name == "labelled_text":
      for key, value in (("text_column", "text"), ("label_column", "label"), ("delimiter", "")):
        if key not in config:
          config[key] = value
    if name == "goemotions" and "label_space" not in config:
      config.label_space = "goemotions28"
  if root:
    config.root = str(Path(root).expanduser())
  if name in READ_FROM_ROOT and not config.get("root"):
    raise InputError(f"Where is the {name} corpus? Give its folder with --root.")
  if family_of(name) == "speech" and not config.get("cache_dir"):
    from emojax.config_utils import cache_dir

    config.cache_dir = cache_dir("features")  # features keyed by file and settings: shared with training runs
  for key, value in (overrides or {}).items():
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


def parse_overrides(items) -> dict:
  """["fold=0", "features.prosody=True"] -> {"fold": 0, "features.prosody": True} (literals, else strings)."""
  overrides = {}
  for item in items or ():
    key, sep, text = item.partition("=")
    if not sep or not key:
      raise InputError(f"--set {item!r}: write key=value (a data config field, e.g. fold=0).")
    try:
      overrides[key.strip()] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      overrides[key.strip()] = text
  return overrides


def read_corpus(config: ml_collections.ConfigDict, split: str) -> Dataset:
  """Split `split` of the corpus; "all" is every file (speech and labelled text read it directly; other readers
  give their train and validation splits, concatenated)."""
  if split != "all" or config.name in SPEECH_CORPORA or config.name == "labelled_text":
    return load_split(config, split)
  parts = []
  for part in ("train", "validation"):
    try:
      parts.append(load_split(config, part))
    except FileNotFoundError as error:
      logging.info("No %s split in %s (%s).", part, config.root, error)
  if not parts:
    raise FileNotFoundError(f"{config.root} has neither a train nor a validation split for {config.name}.")
  return concatenate(parts)


def concatenate(parts: list[Dataset]) -> Dataset:
  if len(parts) == 1:
    return parts[0]
  keys = set.intersection(*(set(p.arrays) for p in parts))
  arrays = {k: np.concatenate([np.asarray(p.arrays[k]) for p in parts]) for k in sorted(keys)}
  return Dataset(
    arrays,
    parts[0].class_names,
    skipped=[s for p in parts for s in p.skipped],
    model_inputs=parts[0].model_inputs,
    multi_label=parts[0].multi_label,
    metadata=parts[0].metadata,
  )


def adapt_to(dataset: Dataset, spec) -> Dataset:
  """The dataset in the model's inputs: a clip corpus for an image model becomes each clip's last real frame."""
  if "image" in spec.example and "image" not in dataset.arrays and "clip" in dataset.arrays:
    clips = np.asarray(dataset.arrays["clip"])
    masks = np.asarray(dataset.arrays.get("clip_mask", np.ones(clips.shape[:2])))
    last = np.maximum(masks.shape[1] - 1 - np.argmax(masks[:, ::-1] > 0, axis=1), 0)
    arrays = {"image": clips[np.arange(len(clips)), last], "label": dataset.arrays["label"], "id": dataset.arrays["id"]}
    logging.info("Image model on clips: each clip's last real frame (CK+'s apex) is its image.")
    return Dataset(
      arrays, dataset.class_names, skipped=dataset.skipped, model_inputs=("image", "label"), metadata=dataset.metadata
    )
  return dataset


# ----------------------------------------------------------------------------------------------
# Label spaces: the model's own, or Ekman-7 when the corpus's differs.
# ----------------------------------------------------------------------------------------------
def same_space(space: labels_lib.LabelSpace, dataset: Dataset) -> bool:
  return tuple(space.class_names) == tuple(dataset.class_names) and space.multi_label == dataset.multi_label


def ekman_labels_of(dataset: Dataset) -> np.ndarray:
  """Each row's Ekman-7 class id, -1 where it has none (a class meaning no Ekman class, or a multi-label row with
  no or several Ekman groups)."""
  from emojax.data.multimodal import ekman_labels

  if not dataset.multi_label:
    ids = np.asarray(
      [labels_lib.EKMAN7.index(e) if (e := labels_lib.ekman7_name(n)) else -1 for n in dataset.class_names]
    )
    return ids[np.asarray(dataset.arrays["label"])]
  names = tuple(dataset.class_names)
  matrix = None if names == labels_lib.EKMAN7 else dataset.metadata.get("groupings", {}).get("ekman", (None, None))[1]
  if names != labels_lib.EKMAN7 and matrix is None:
    raise InputError(f"The corpus's multi-label classes {names} have no Ekman-7 grouping to compare through.")
  return ekman_labels(names, dataset.arrays["labels"], matrix)


def compared_classes(spaces: list[labels_lib.LabelSpace], data_labels: np.ndarray) -> list[int]:
  """Ekman classes every model reaches and some row carries."""
  reach = np.all([np.asarray(s.ekman_matrix).sum(0) > 0 for s in spaces], axis=0)
  return [k for k in range(len(labels_lib.EKMAN7)) if reach[k] and (data_labels == k).any()]


def mapping_summary(spaces, dataset: Dataset, data_labels: np.ndarray, compared: list[int]) -> dict:
  def to_ekman(names, matrix):
    return {name: [labels_lib.EKMAN7[k] for k in np.flatnonzero(row)] for name, row in zip(names, np.asarray(matrix))}

  data_classes = sorted({labels_lib.EKMAN7[k] for k in data_labels if k >= 0}, key=labels_lib.EKMAN7.index)
  reached = {k for s in spaces for k in np.flatnonzero(np.asarray(s.ekman_matrix).sum(0))}
  model_classes = sorted({labels_lib.EKMAN7[k] for k in reached}, key=labels_lib.EKMAN7.index)
  names = [labels_lib.EKMAN7[k] for k in compared]
  kept = np.isin(data_labels, compared)
  return {
    "space": "ekman7",
    "compared_classes": names,
    "model_classes_to_ekman7": to_ekman(spaces[0].class_names, spaces[0].ekman_matrix),
    "corpus_classes": list(dataset.class_names),
    "model_only_classes": [c for c in model_classes if c not in names],
    "corpus_only_classes": [c for c in data_classes if c not in names],
    "rows_compared": int(kept.sum()),
    "rows_without_compared_class": int((~kept).sum()),
    "note": (
      "model probabilities summed (single-label) or grouped by their most probable member (multi-label) into "
      "Ekman-7, restricted to the compared classes and renormalised; corpus labels mapped to Ekman-7 by name"
    ),
  }


# ----------------------------------------------------------------------------------------------
# Scoring.
# ----------------------------------------------------------------------------------------------
def score(recognizers: list, dataset: Dataset, names: list[str] | None = None) -> tuple[dict, dict]:
  """(report, outputs) of one model or the average of several on `dataset`; report as training's evaluation
  (`metrics_lib.evaluate_outputs` plus the plain cross-entropy `loss`), with `members` and `label_mapping` where
  they apply. `outputs` holds the (averaged) logits and probabilities per row, in dataset order."""
  names = names or [str(r.trained.source.get("path", i)) for i, r in enumerate(recognizers)]
  dataset = adapt_to(dataset, recognizers[0].spec)
  member_outputs = [r.run_dataset(dataset) for r in recognizers]
  spaces = [r.label_space for r in recognizers]
  if all(same_space(s, dataset) for s in spaces):
    scored, mapping = dataset, None
    probabilities = [metrics_lib.class_probabilities(o["logits"], dataset.multi_label) for o in member_outputs]
    if len(recognizers) == 1:  # the model's own outputs, as its evaluator saw them
      outputs, mean = dict(member_outputs[0]), probabilities[0]
    else:
      sentiment = [o.get("sentiment_logits") for o in member_outputs]
      outputs, mean = metrics_lib.averaged_outputs(probabilities, dataset.multi_label, sentiment)
  else:
    if any(s.ekman_matrix is None for s in spaces):
      raise InputError("A model's classes have no Ekman-7 mapping, and the corpus's classes differ from them.")
    data_labels = ekman_labels_of(dataset)
    compared = compared_classes(spaces, data_labels)
    if not compared:
      raise InputError(f"The model and the corpus share no Ekman-7 class (corpus classes {dataset.class_names}).")
    mapping = mapping_summary(spaces, dataset, data_labels, compared)
    keep = np.isin(data_labels, compared)
    probabilities = []
    for space, member in zip(spaces, member_outputs):
      ekman = space.ekman7_probabilities(member["logits"])[keep][:, compared]
      probabilities.append(ekman / np.maximum(ekman.sum(-1, keepdims=True), 1e-12))
    mean = np.mean(probabilities, axis=0)
    outputs = {"logits": metrics_lib.logits_of(mean, False)}
    label = np.searchsorted(compared, data_labels[keep]).astype(np.int32)
    scored = Dataset(
      {"label": label, "id": np.asarray(dataset.arrays["id"])[keep]}, tuple(labels_lib.EKMAN7[k] for k in compared)
    )
  report = metrics_lib.evaluate_outputs(outputs, scored)
  report["all"]["loss"] = metrics_lib.plain_cross_entropy(outputs["logits"], scored)
  if mapping is not None:
    report["label_mapping"] = mapping
  if len(recognizers) > 1:
    rows = []
    for name, recognizer, member, p in zip(names, recognizers, member_outputs, probabilities):
      member_logits = metrics_lib.logits_of(p, scored.multi_label) if mapping is not None else member["logits"]
      metrics = metrics_lib.evaluate_outputs({"logits": member_logits}, scored)["all"]
      rows.append(
        {"member": name, "model": recognizer.config.model.name, **{k: metrics[k] for k in metrics_lib.HEADLINE}}
      )
    rows.append(
      {
        "member": "ensemble",
        "model": f"mean of {len(recognizers)}",
        **{k: report["all"][k] for k in metrics_lib.HEADLINE},
      }
    )
    report["members"] = rows
  outputs["probabilities"] = mean.astype(np.float32)
  outputs["ids"] = np.asarray(scored.arrays["id"]).astype(str)
  return report, outputs


def validation_report(trained) -> dict:
  """A model's report on its run's own evaluation split (bundles of runs without one)."""
  from emojax.inference.recognizer import Recognizer

  data = trained.config.data
  dataset = load_split(data, data.eval_split)
  report, _ = score([Recognizer(trained, warmup=False)], dataset)
  report.update(
    model=trained.config.model.name,
    dataset=data.name,
    split=data.eval_split,
    checkpoint_step=trained.source.get("step"),
  )
  return report


def evaluate_models(
  models: list[str],
  data: str,
  root: str = "",
  split: str = "validation",
  out: str = "",
  overrides: dict | None = None,
  which: str = "best",
) -> tuple[dict, Path]:
  """`emojax evaluate`: loads each model, reads the corpus the first model's way, scores, writes report.json,
  report.md, confusion matrices and predictions.npz to `out`; returns (report, out)."""
  from emojax.inference.recognizer import Recognizer

  if not models:
    raise InputError("Give at least one --model (a bundle folder or a training workdir).")
  recognizers = [Recognizer.load(m, which=which, warmup=False) for m in models]
  kinds = {r.config.model.name == "fusion.end_to_end" for r in recognizers}
  families = {tuple(r.modalities) for r in recognizers}
  if len(families) > 1:
    raise InputError(f"Models read different modalities {sorted(families)}: an ensemble scores one kind of input.")
  if True in kinds and data != recognizers[0].config.data.name:
    raise InputError(
      "An end-to-end fusion model is scored on the tuples it was trained on "
      f"(--data {recognizers[0].config.data.name})."
    )
  config = corpus_config(recognizers[0].config.data, data, root, overrides)
  dataset = read_corpus(config, split)
  names = [Path(m).name or str(m) for m in models]
  report, outputs = score(recognizers, dataset, names)
  report.update(
    model=" + ".join(r.config.model.name for r in recognizers),
    models=[str(m) for m in models],
    dataset=data,
    root=config.get("root", ""),
    split=split,
  )
  out = Path(out) if out else Path("evaluations") / f"{'+'.join(names)}_on_{data}_{split}"
  title = f"{' + '.join(names)} on {data} {split}"
  members = report.pop("members", None)  # a table of its own, not a line of write_report's run section
  reports.write_report(report, out, title)
  if members:
    report["members"] = members
    (out / "report.json").write_text(json.dumps(report, indent=2))
  _append_markdown(report, out)
  np.savez_compressed(out / "predictions.npz", **{k: np.asarray(v) for k, v in outputs.items()})
  return report, out


def _append_markdown(report: dict, out: Path) -> None:
  """Label mapping and ensemble members, after write_report's sections (which skip these non-metric entries)."""
  from emojax.ensemble import members_markdown

  lines = []
  mapping = report.get("label_mapping")
  if mapping:
    lines += [
      "## label mapping",
      "",
      f"Compared in Ekman-7: {', '.join(mapping['compared_classes'])} "
      f"({mapping['rows_compared']} rows; {mapping['rows_without_compared_class']} rows had no compared "
      "class).",
      f"- model classes -> Ekman-7: {json.dumps(mapping['model_classes_to_ekman7'])}",
      f"- corpus classes: {', '.join(mapping['corpus_classes'])}",
      f"- only the model reaches: {', '.join(mapping['model_only_classes']) or 'none'}",
      f"- only the corpus has: {', '.join(mapping['corpus_only_classes']) or 'none'}",
      "",
    ]
  if report.get("members"):
    lines += members_markdown(report["members"])
  if lines:
    with open(out / "report.md", "a") as markdown:
      markdown.write("\n" + "\n".join(lines))
