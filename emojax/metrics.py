"""Classification metrics: single-label (accuracy, balanced accuracy = UA, macro and weighted precision / recall /
F1, per-class figures, the confusion matrix, calibration) and multi-label (per-label thresholds tuned on the
split, or cross-fitted), and the conversions between logits and class probabilities that ensembles use.

The definitions follow scikit-learn's (tests check them against it). Rows of a confusion matrix are the true
class. The prediction loop is `emojax.prediction`; reports and plots are `emojax.reports`.
"""

import jax.numpy as jnp
import numpy as np

from emojax import losses

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")
GROUP_WEIGHT = "group_weight_"  # adaptive feature weighting's per-example weights, kept too and summarised


def _averages(precision, recall, f1, weights) -> dict:
  """Macro (plain mean over classes) and weighted (by support) precision, recall and F1."""
  figures = {"precision": precision, "recall": recall, "f1": f1}
  return {
    **{f"macro_{name}": float(values.mean()) for name, values in figures.items()},
    **{f"weighted_{name}": float((values * weights).sum()) for name, values in figures.items()},
  }


def _per_class(class_names, precision, recall, f1, support) -> dict:
  return {
    name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
    for i, name in enumerate(class_names)
  }


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
    **_averages(precision, recall, f1, weights),
    "per_class": _per_class(class_names, precision, recall, f1, support),
    "confusion_matrix": confusion.tolist(),
    "class_names": list(class_names),
  }


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
  report["all"]["expected_calibration_error"] = expected_calibration_error(
    class_probabilities(outputs["logits"], multi_label=False), np.asarray(labels)
  )
  for name, mask in dataset.eval_subsets.items():
    report[name] = classification_metrics(labels[mask], predictions[mask], dataset.class_names)
  weights = {k.removeprefix(GROUP_WEIGHT): np.asarray(v) for k, v in outputs.items() if k.startswith(GROUP_WEIGHT)}
  if weights:  # what the model relied on: mean weight of each feature group, overall and per true class
    report["all"]["group_weights"] = {name: float(w.mean()) for name, w in weights.items()}
    report["all"]["group_weights_per_class"] = {
      class_name: {name: float(w[labels == c].mean()) for name, w in weights.items()}
      for c, class_name in enumerate(dataset.class_names)
      if (labels == c).any()
    }
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
    **_averages(precision, recall, f1, weights),
    "micro_precision": float(micro[0]),
    "micro_recall": float(micro[1]),
    "micro_f1": float(micro[2]),
    "per_class": _per_class(class_names, precision, recall, f1, support),
    "class_names": list(class_names),
  }


def tune_thresholds(probabilities: np.ndarray, labels: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
  """Per label, the grid threshold with the highest F1 on these rows (0.5 for a label with no positives)."""
  probabilities, labels = np.asarray(probabilities, np.float32), np.asarray(labels) > 0.5
  predicted = probabilities[None] >= grid[:, None, None]  # [G, N, C]
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
  tuned.update(
    thresholds={n: float(t) for n, t in zip(names, thresholds)},
    threshold_note="per-label thresholds tuned on this split",
    macro_f1_at_0_5=at_half["macro_f1"],
    macro_f1_crossfit=crossfit["macro_f1"],
  )
  return {"tuned": tuned, "threshold_0.5": at_half, "crossfit": crossfit}


def evaluate_multilabel_outputs(outputs: dict, dataset) -> dict:
  """`all`: decisions at per-label thresholds tuned on this split (the GoEmotions protocol; optimistic on the
  split it is tuned on), `threshold_0.5` and `crossfit` (thresholds tuned on the other half of the rows)
  beside it. A 28-label model is also scored on the coarser spaces: a group's probability is its most
  probable member's, with its own tuned threshold. The sentiment head is scored as a 4-way classifier."""
  probabilities = class_probabilities(outputs["logits"], multi_label=True)
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
      np.asarray(dataset.arrays["sentiment"]).argmax(-1),
      np.asarray(outputs["sentiment_logits"]).argmax(-1),
      dataset.metadata.get("sentiment_names", [str(i) for i in range(outputs["sentiment_logits"].shape[-1])]),
    )
  return report


def plain_cross_entropy(logits, dataset) -> float:
  """The `loss` an evaluation reports: cross-entropy of the logits alone (no class weights, no confidence or
  sentiment terms), so it compares across models, heads and loss options. Sigmoid for multi-label datasets."""
  logits = jnp.asarray(logits, jnp.float32)
  if dataset.multi_label:
    loss, _ = losses.multilabel_loss({"logits": logits}, {"labels": jnp.asarray(dataset.arrays["labels"])})
  else:
    loss, _ = losses.classification_loss({"logits": logits}, {"label": jnp.asarray(dataset.arrays["label"])})
  return float(loss)


# A floor under averaged probabilities before their log: what test-time flipping clips to as well.
PROBABILITY_FLOOR = 1e-9


def class_probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
  """Softmax over classes, or per-label sigmoid for multi-label outputs, in float64."""
  logits = np.asarray(logits, np.float64)
  if multi_label:
    return 1 / (1 + np.exp(-logits))
  shifted = np.exp(logits - logits.max(-1, keepdims=True))
  return shifted / shifted.sum(-1, keepdims=True)


def logits_of(probabilities: np.ndarray, multi_label: bool) -> np.ndarray:
  """Logits whose softmax (sigmoid when multi-label) gives back `probabilities`: the evaluator's input."""
  clipped = np.clip(probabilities, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR if multi_label else 1.0)
  return np.log(clipped) - np.log1p(-clipped) if multi_label else np.log(clipped)


def averaged_outputs(
  probabilities: list[np.ndarray], multi_label: bool, sentiment_logits=()
) -> tuple[dict, np.ndarray]:
  """Several models' outputs on the same rows as one, from their class probabilities [N, C] each: logits whose
  softmax (sigmoid when multi-label) is the mean probability, a sentiment head averaged alike when every member
  has one; and that mean. Probabilities rather than logits: a member's logit scale says nothing about how far to
  trust it."""
  mean = np.mean(probabilities, axis=0)
  outputs = {"logits": logits_of(mean, multi_label)}
  if sentiment_logits and all(s is not None for s in sentiment_logits):
    sentiment_mean = np.mean([class_probabilities(s, False) for s in sentiment_logits], axis=0)
    outputs["sentiment_logits"] = logits_of(sentiment_mean, False)
  return outputs, mean
