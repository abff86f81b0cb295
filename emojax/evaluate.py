"""Evaluation: predictions over a whole split, classification metrics, reports and plots.

Metrics follow scikit-learn's definitions (tests check them against it): accuracy, balanced
accuracy (= unweighted average recall, UA, as the speech community calls it), macro and weighted
precision / recall / F1, a per-class report and the confusion matrix (rows = true class).
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from jax.experimental import multihost_utils

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from emojax import sharding  # noqa: E402
from emojax.data import pipeline  # noqa: E402

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")
# What evaluation keeps of a model's outputs (frame_*: CNNBiLSTM's attention over frames and its gate).
PREDICTION_KEYS = ("logits", "confidence", "sentiment_logits", "frame_attention", "frame_gate")
GROUP_WEIGHT = "group_weight_"  # adaptive feature weighting's per-example weights, kept too and summarised


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, class_names) -> dict:
  num_classes = len(class_names)
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (labels, predictions), 1)
  support = confusion.sum(1)
  predicted = confusion.sum(0)
  true_positive = np.diag(confusion)
  with np.errstate(divide="ignore", invalid="ignore"):
    precision = np.where(predicted > 0, true_positive / predicted, 0.0)
    recall = np.where(support > 0, true_positive / support, 0.0)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
  present = support > 0  # balanced accuracy averages recall over classes that occur
  weights = support / max(support.sum(), 1)
  return {
      "num_examples": int(support.sum()),
      "accuracy": float(true_positive.sum() / max(support.sum(), 1)),
      "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
      "macro_precision": float(precision.mean()),
      "macro_recall": float(recall.mean()),
      "macro_f1": float(f1.mean()),
      "weighted_precision": float((precision * weights).sum()),
      "weighted_recall": float((recall * weights).sum()),
      "weighted_f1": float((f1 * weights).sum()),
      "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                           "f1": float(f1[i]), "support": int(support[i])}
                    for i, name in enumerate(class_names)},
      "confusion_matrix": confusion.tolist(),
      "class_names": list(class_names),
  }


def mirror(batch: dict) -> dict:
  """The batch with every face left-right mirrored: images [B, H, W, C], clips [B, T, H, W, C], landmarks."""
  if "image" not in batch and "clip" not in batch:
    raise ValueError("config.eval.tta_flip=True mirrors faces; this model's batches have no image or clip.")
  mirrored = dict(batch)
  if "image" in batch:
    mirrored["image"] = batch["image"][:, :, ::-1]
  if "clip" in batch:
    mirrored["clip"] = batch["clip"][:, :, :, ::-1]
  if "landmarks" in batch:
    mirrored["landmarks"] = batch["landmarks"].at[..., 0].set(1.0 - batch["landmarks"][..., 0])
  return mirrored


def make_predict_step(model, keys=PREDICTION_KEYS, tta_flip: bool = False):
  """A jitted (variables, batch) -> outputs. `tta_flip`: test-time augmentation for faces, the logits being
  the log of the mean of the class probabilities of the face and its mirror image."""
  def predict_step(variables, batch):
    outputs = model.apply(variables, batch, train=False)
    if tta_flip:
      mirrored = model.apply(variables, mirror(batch), train=False)
      probabilities = (jax.nn.softmax(outputs["logits"], -1) + jax.nn.softmax(mirrored["logits"], -1)) / 2
      outputs = {**outputs, "logits": jnp.log(jnp.clip(probabilities, 1e-9, 1.0))}
    return {k: v for k, v in outputs.items() if k in keys or k.startswith(GROUP_WEIGHT)}
  return jax.jit(predict_step)


def predict(predict_step, variables, dataset, mesh, batch_size: int, widths=pipeline.DEFAULT_TOKEN_WIDTHS) -> dict:
  """Runs the model over every example of `dataset` once; returns numpy arrays in dataset order."""
  chunks, index_chunks = [], []
  for local_batch, indices in pipeline.eval_batches(dataset, batch_size, widths):
    inputs = {k: local_batch[k] for k in dataset.model_inputs}
    outputs = predict_step(variables, sharding.global_batch(inputs, mesh))
    chunks.append(jax.tree.map(lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), outputs))
    padded = np.full(len(local_batch["valid"]), -1)
    padded[:len(indices)] = indices
    index_chunks.append(np.asarray(multihost_utils.process_allgather(jnp.asarray(padded), tiled=False)).ravel())
  outputs = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  indices = np.concatenate(index_chunks)
  keep = indices >= 0
  order = np.argsort(indices[keep], kind="stable")
  return {k: v[keep][order] for k, v in outputs.items()}


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> float:
  """ECE (Guo et al., 2017): over equal-width bins of the top-class probability, the example-weighted mean
  gap between the bin's accuracy and its mean confidence."""
  confidence = probabilities.max(-1)
  correct = probabilities.argmax(-1) == labels
  bins = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
  error = 0.0
  for b in range(num_bins):
    chosen = bins == b
    if chosen.any():
      error += chosen.mean() * abs(correct[chosen].mean() - confidence[chosen].mean())
  return float(error)


def evaluate_outputs(outputs: dict, dataset) -> dict:
  """Metrics on the whole split and on each of the dataset's evaluation subsets."""
  if dataset.multi_label:
    return evaluate_multilabel_outputs(outputs, dataset)
  labels = dataset.arrays["label"]
  predictions = outputs["logits"].argmax(-1)
  report = {"all": classification_metrics(labels, predictions, dataset.class_names)}
  logits = np.asarray(outputs["logits"], np.float64)
  probabilities = np.exp(logits - logits.max(-1, keepdims=True))
  report["all"]["expected_calibration_error"] = expected_calibration_error(
      probabilities / probabilities.sum(-1, keepdims=True), np.asarray(labels))
  for name, mask in dataset.eval_subsets.items():
    report[name] = classification_metrics(labels[mask], predictions[mask], dataset.class_names)
  weights = {k.removeprefix(GROUP_WEIGHT): np.asarray(v) for k, v in outputs.items() if k.startswith(GROUP_WEIGHT)}
  if weights:  # what the model relied on: mean weight of each feature group, overall and per true class
    report["all"]["group_weights"] = {name: float(w.mean()) for name, w in weights.items()}
    report["all"]["group_weights_per_class"] = {
        class_name: {name: float(w[labels == c].mean()) for name, w in weights.items()}
        for c, class_name in enumerate(dataset.class_names) if (labels == c).any()}
  if "frame_attention" in outputs and "damaged" in dataset.arrays:  # clips with known bad frames (synthetic)
    damaged = np.asarray(dataset.arrays["damaged"], bool)
    real = np.asarray(dataset.arrays.get("clip_mask", np.ones(damaged.shape)), bool)
    for name, values in (("attention", outputs["frame_attention"]), ("gate", outputs["frame_gate"])):
      values = np.asarray(values)
      report["all"][f"mean_{name}_damaged_frames"] = float(values[damaged & real].mean()) if damaged.any() else 0.0
      report["all"][f"mean_{name}_clean_frames"] = float(values[~damaged & real].mean())
  if "confidence" in outputs:
    correct = predictions == labels
    report["all"]["mean_confidence_correct"] = float(outputs["confidence"][correct].mean()) if correct.any() else 0.0
    report["all"]["mean_confidence_wrong"] = float(outputs["confidence"][~correct].mean()) if (~correct).any() else 0.0
  return report


def write_report(report: dict, out_dir: str | Path, title: str) -> None:
  """report.json, report.md and confusion_matrix.{png,json} for each evaluated subset."""
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "report.json").write_text(json.dumps(report, indent=2))
  lines = [f"# {title}", ""]
  for subset, metrics in report.items():
    if not isinstance(metrics, dict) or "per_class" not in metrics:
      continue
    suffix = "" if subset == "all" else f"_{subset}"
    if "confusion_matrix" in metrics:
      save_confusion_matrix(metrics, out_dir / f"confusion_matrix{suffix}", f"{title} ({subset})")
    lines += [f"## {subset} ({metrics['num_examples']} examples)", "",
              "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {metrics[k]:.4f} |" for k in HEADLINE + ("macro_precision", "macro_recall")]
    if "thresholds" in metrics:
      lines += [f"| {metrics['threshold_note']} | |"]
    threshold = lambda name: f" {metrics['thresholds'][name]:.2f} |" if "thresholds" in metrics else ""
    lines += ["", "| class | precision | recall | f1 | support |" + (" threshold |" if "thresholds" in metrics else ""),
              "|---|---|---|---|---|" + ("---|" if "thresholds" in metrics else "")]
    lines += [f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |{threshold(name)}"
              for name, m in metrics["per_class"].items()]
    if "group_weights_per_class" in metrics:
      groups = list(metrics["group_weights"])
      lines += ["", "Adaptive feature weighting (mean weight of each feature group):", "",
                "| class | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups),
                "| all | " + " | ".join(f"{metrics['group_weights'][g]:.3f}" for g in groups) + " |"]
      lines += [f"| {name} | " + " | ".join(f"{w[g]:.3f}" for g in groups) + " |"
                for name, w in metrics["group_weights_per_class"].items()]
    lines.append("")
  extra = {k: v for k, v in report.items() if not isinstance(v, dict)}
  if extra:
    lines += ["## run", ""] + [f"- {k}: {v}" for k, v in extra.items()]
  (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def save_confusion_matrix(metrics: dict, path_stem: Path, title: str) -> None:
  confusion = np.array(metrics["confusion_matrix"])
  names = metrics["class_names"]
  Path(f"{path_stem}.json").write_text(json.dumps({"class_names": names, "rows_true_columns_predicted": confusion.tolist()}))
  normalized = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
  fig, ax = plt.subplots(figsize=(6.5, 5.5))
  image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
  for i in range(len(names)):
    for j in range(len(names)):
      ax.text(j, i, f"{confusion[i, j]}\n{normalized[i, j]:.2f}", ha="center", va="center", fontsize=7,
              color="white" if normalized[i, j] > 0.5 else "black")
  ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
  ax.set_yticks(range(len(names)), names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title, fontsize=9)
  fig.colorbar(image, ax=ax, fraction=0.046)
  fig.tight_layout()
  fig.savefig(f"{path_stem}.png", dpi=120)
  plt.close(fig)


def plot_training_curves(records: list[dict], path: str | Path) -> None:
  """Loss and accuracy against step, train and validation, from metrics.jsonl records."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for ax, key in zip(axes, ("loss", "accuracy")):
    for split, style in (("train", "-"), ("validation", "o-")):
      points = [(r["step"], r[key]) for r in records if r.get("split") == split and key in r]
      if points:
        steps, values = zip(*points)
        ax.plot(steps, values, style, label=split, markersize=3)
    ax.set_xlabel("step")
    ax.set_title(key)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


# ----------------------------------------------------------------------------------------------
# Multi-label (GoEmotions): per-label sigmoid decisions at per-label thresholds.
# ----------------------------------------------------------------------------------------------
THRESHOLD_GRID = np.round(np.arange(0.02, 0.981, 0.01), 2)


def multilabel_metrics(labels: np.ndarray, predictions: np.ndarray, class_names) -> dict:
  """scikit-learn's multi-label definitions (zero_division=0): per-label P/R/F1, their macro, support-weighted
  and micro averages; `accuracy` is exact match (subset accuracy); `balanced_accuracy` the mean over labels of
  (sensitivity + specificity) / 2."""
  labels, predictions = np.asarray(labels) > 0.5, np.asarray(predictions) > 0.5
  true_positive = (labels & predictions).sum(0).astype(np.float64)
  false_positive = (~labels & predictions).sum(0)
  false_negative = (labels & ~predictions).sum(0)
  true_negative = (~labels & ~predictions).sum(0)
  support = labels.sum(0)

  def f1_of(tp, fp, fn):
    with np.errstate(divide="ignore", invalid="ignore"):
      precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
      recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
      f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1

  precision, recall, f1 = f1_of(true_positive, false_positive, false_negative)
  negatives = true_negative + false_positive
  specificity = np.where(negatives > 0, true_negative / np.maximum(negatives, 1), 0.0)
  weights = support / max(support.sum(), 1)
  micro = f1_of(true_positive.sum(), false_positive.sum(), false_negative.sum())
  return {
      "num_examples": int(len(labels)),
      "accuracy": float((labels == predictions).all(1).mean()) if len(labels) else 0.0,
      "balanced_accuracy": float(((recall + specificity) / 2).mean()),
      "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()), "macro_f1": float(f1.mean()),
      "weighted_precision": float((precision * weights).sum()), "weighted_recall": float((recall * weights).sum()),
      "weighted_f1": float((f1 * weights).sum()),
      "micro_precision": float(micro[0]), "micro_recall": float(micro[1]), "micro_f1": float(micro[2]),
      "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                           "support": int(support[i])} for i, name in enumerate(class_names)},
      "class_names": list(class_names),
  }


def tune_thresholds(probabilities: np.ndarray, labels: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
  """Per label, the grid threshold with the highest F1 on these rows (0.5 for a label with no positives)."""
  probabilities, labels = np.asarray(probabilities, np.float32), np.asarray(labels) > 0.5
  predicted = probabilities[None] >= grid[:, None, None]                    # [G, N, C]
  true_positive = (predicted & labels[None]).sum(1)
  f1 = 2 * true_positive / np.maximum(predicted.sum(1) + labels.sum(0)[None], 1)  # [G, C]
  best = grid[f1.argmax(0)]
  return np.where(labels.sum(0) > 0, best, 0.5).astype(np.float32)


def crossfit_predictions(probabilities: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
  """Two-fold cross-fitted decisions: thresholds tuned on one random half of the rows decide the other half,
  so the macro-F1 of tuned thresholds is measured on rows they were not tuned on."""
  halves = np.random.default_rng(seed).permutation(len(labels)) % 2 == 0
  predictions = np.zeros(probabilities.shape, bool)
  for tune, apply in ((halves, ~halves), (~halves, halves)):
    predictions[apply] = probabilities[apply] >= tune_thresholds(probabilities[tune], labels[tune])
  return predictions


def multilabel_report(probabilities: np.ndarray, labels: np.ndarray, names) -> dict:
  """Metrics at per-label thresholds tuned on these rows (with the thresholds), at 0.5, and cross-fitted."""
  labels = np.asarray(labels) > 0.5
  thresholds = tune_thresholds(probabilities, labels)
  tuned = multilabel_metrics(labels, probabilities >= thresholds, names)
  at_half = multilabel_metrics(labels, probabilities >= 0.5, names)
  crossfit = multilabel_metrics(labels, crossfit_predictions(probabilities, labels), names)
  tuned.update(thresholds={n: float(t) for n, t in zip(names, thresholds)},
               threshold_note="per-label thresholds tuned on this split",
               macro_f1_at_0_5=at_half["macro_f1"], macro_f1_crossfit=crossfit["macro_f1"])
  return {"tuned": tuned, "threshold_0.5": at_half, "crossfit": crossfit}


def evaluate_multilabel_outputs(outputs: dict, dataset) -> dict:
  """`all`: decisions at per-label thresholds tuned on this split (the GoEmotions protocol; optimistic on the
  split it is tuned on), `threshold_0.5` and `crossfit` (thresholds tuned on the other half of the rows)
  beside it. A 28-label model is also scored on the coarser spaces: a group's probability is its most
  probable member's, with its own tuned threshold. The sentiment head is scored as a 4-way classifier."""
  probabilities = 1 / (1 + np.exp(-np.asarray(outputs["logits"], np.float64)))
  own = multilabel_report(probabilities, dataset.arrays["labels"], dataset.class_names)
  report = {"all": own["tuned"], "threshold_0.5": own["threshold_0.5"], "crossfit": own["crossfit"]}
  if "labels_28" in dataset.arrays and len(dataset.class_names) == dataset.arrays["labels_28"].shape[1]:
    for space, (space_names, matrix) in dataset.metadata.get("groupings", {}).items():
      members = np.asarray(matrix, bool)
      group_probabilities = np.stack([probabilities[:, members[:, g]].max(1) for g in range(members.shape[1])], 1)
      group_labels = (np.asarray(dataset.arrays["labels_28"], np.float32) @ matrix) > 0
      projected = multilabel_report(group_probabilities, group_labels, space_names)
      report[f"{space}_from_28"] = projected["tuned"]
      report[f"{space}_from_28_crossfit"] = projected["crossfit"]
  if "sentiment_logits" in outputs and "sentiment" in dataset.arrays:
    report["sentiment_head"] = classification_metrics(
        np.asarray(dataset.arrays["sentiment"]).argmax(-1), np.asarray(outputs["sentiment_logits"]).argmax(-1),
        dataset.metadata.get("sentiment_names", [str(i) for i in range(outputs["sentiment_logits"].shape[-1])]))
  return report


def plain_cross_entropy(logits, dataset) -> float:
  """The `loss` an evaluation reports: cross-entropy of the logits alone (no class weights, no confidence or
  sentiment terms), so it compares across models, heads and loss options. Sigmoid for multi-label datasets."""
  from emojax import losses
  logits = jnp.asarray(logits, jnp.float32)
  if dataset.multi_label:
    loss, _ = losses.multilabel_loss({"logits": logits}, {"labels": jnp.asarray(dataset.arrays["labels"])})
  else:
    loss, _ = losses.classification_loss({"logits": logits}, {"label": jnp.asarray(dataset.arrays["label"])})
  return float(loss)


# A floor under averaged probabilities before their log: what test-time flipping clips to as well.
_PROBABILITY_FLOOR = 1e-9


def class_probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
  """Softmax over classes, or per-label sigmoid for multi-label outputs, in float64."""
  logits = np.asarray(logits, np.float64)
  if multi_label:
    return 1 / (1 + np.exp(-logits))
  shifted = np.exp(logits - logits.max(-1, keepdims=True))
  return shifted / shifted.sum(-1, keepdims=True)


def logits_of(probabilities: np.ndarray, multi_label: bool) -> np.ndarray:
  """Logits whose softmax (sigmoid when multi-label) gives back `probabilities`: the evaluator's input."""
  clipped = np.clip(probabilities, _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR if multi_label else 1.0)
  return np.log(clipped) - np.log1p(-clipped) if multi_label else np.log(clipped)
