"""Losses over model output dicts. Each returns (scalar loss, dict of per-batch metrics).

Batches carry `valid` (1 for real examples, 0 for padding) so padded evaluation batches do not
count; training batches are all valid.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _weighted_mean(values, weights):
  return (values * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def classification_loss(
  outputs,
  batch,
  label_smoothing: float = 0.0,
  confidence_weight: float = 0.1,
  auxiliary_weight: float = 0.0,
  class_weights=None,
):
  """Softmax cross-entropy, plus a confidence term for models with a `confidence` output.

  Confidence (DeVries & Taylor, 2018): with hints p' = c * p + (1 - c) * onehot(y), the head pays
  -log p'(y) - confidence_weight * log c. Trained jointly as in the paper, the classifier and head
  collapse on FER2013 (c -> 0.12 within 250 steps, the hints carry the loss and the classifier
  stops learning). Here the classifier learns from plain cross-entropy and the hint term reaches
  the confidence head only (p held fixed), whose optimum is then
  c = confidence_weight / ((1 + confidence_weight) * (1 - p(y))), clipped to 1: rising with the
  probability of the true class, i.e. a learned estimate of how far to trust the prediction.
  """
  logits = outputs["logits"]
  num_classes = logits.shape[-1]
  weights = batch.get("valid", jnp.ones(logits.shape[:1], jnp.float32))
  targets = jax.nn.one_hot(batch["label"], num_classes)
  if "mix_label" in batch and "mix_weight" in batch:  # mixup / cutmix (device_augment.mix_batch): soft targets
    own = batch["mix_weight"][:, None]
    targets = own * targets + (1 - own) * jax.nn.one_hot(batch["mix_label"], num_classes)
  targets = optax.smooth_labels(targets, label_smoothing)
  cross_entropy = optax.softmax_cross_entropy(logits, targets)
  metrics = {
    "cross_entropy": _weighted_mean(cross_entropy, weights),
    "accuracy": _weighted_mean((logits.argmax(-1) == batch["label"]).astype(jnp.float32), weights),
  }
  for key in [k for k in outputs if k.startswith("group_weight_")]:  # adaptive feature weighting, logged
    metrics[key] = _weighted_mean(outputs[key], weights)
  loss = metrics["cross_entropy"]
  if class_weights is not None:  # config.data.class_balance="reweight" (emojax.data.quality); metrics stay plain
    loss = _weighted_mean(cross_entropy, weights * example_class_weights(batch, class_weights))
  if auxiliary_weight > 0 and ("modality_logits" in outputs or "frame_logits" in outputs):
    # Each part's own classifier, averaged over the parts an example has: fusion's present modalities
    # (`modality_logits` [B, M, C]), or a sequence model's real frames (`frame_logits` [B, T, C]).
    if "modality_logits" in outputs:
      part_logits, present = outputs["modality_logits"], batch["present"].astype(jnp.float32)
    else:
      part_logits, present = outputs["frame_logits"], outputs["frame_mask"].astype(jnp.float32)
    per_part = optax.softmax_cross_entropy(part_logits, targets[:, None, :])  # [B, M]
    auxiliary = (per_part * present).sum(1) / jnp.maximum(present.sum(1), 1.0)
    metrics["auxiliary_cross_entropy"] = _weighted_mean(auxiliary, weights)
    loss = loss + auxiliary_weight * metrics["auxiliary_cross_entropy"]
  if "confidence" not in outputs:
    return loss, metrics
  confidence = jnp.clip(outputs["confidence"], 1e-6, 1 - 1e-6)
  probs = jax.lax.stop_gradient(jax.nn.softmax(logits))
  hinted = confidence[:, None] * probs + (1 - confidence[:, None]) * targets
  hint_loss = -(targets * jnp.log(jnp.clip(hinted, 1e-12))).sum(-1) - confidence_weight * jnp.log(confidence)
  metrics["confidence"] = _weighted_mean(confidence, weights)
  metrics["confidence_loss"] = _weighted_mean(hint_loss, weights)
  return loss + metrics["confidence_loss"], metrics


def example_class_weights(batch, class_weights):
  """Each example's weight under config.data.class_balance="reweight": its class's (a mixed example: the mix's)."""
  class_weights = jnp.asarray(class_weights)
  weight = class_weights[batch["label"]]
  if "mix_label" in batch and "mix_weight" in batch:
    weight = batch["mix_weight"] * weight + (1 - batch["mix_weight"]) * class_weights[batch["mix_label"]]
  return weight


def positive_class_weights(multi_hot: np.ndarray, power: float, max_weight: float) -> np.ndarray:
  """Per-label weights of the positive term, (negatives / positives) ** power, clipped to [1, max_weight].

  power=0.5 (the square root) lifts grief (77 of 43,410 GoEmotions rows) by ~24x instead of 560x: enough to
  be predicted at all without swamping the frequent labels.
  """
  positives = np.asarray(multi_hot, np.float64).sum(0)
  ratio = np.where(positives > 0, (len(multi_hot) - positives) / np.maximum(positives, 1.0), 1.0)
  return np.clip(ratio**power, 1.0, max_weight).astype(np.float32)


def multilabel_loss(
  outputs,
  batch,
  positive_weights=None,
  focal_gamma: float = 0.0,
  emotion_weight: float = 1.0,
  sentiment_weight: float = 0.0,
):
  """Sigmoid cross-entropy over multi-hot `labels` (positives weighted per label, or focal with gamma > 0),
  plus `sentiment_weight` x softmax cross-entropy of `sentiment_logits` against the soft `sentiment` target."""
  logits, targets = outputs["logits"].astype(jnp.float32), batch["labels"]
  weights = batch.get("valid", jnp.ones(logits.shape[:1], jnp.float32))
  if focal_gamma > 0:
    per_label = optax.sigmoid_focal_loss(logits, targets, alpha=None, gamma=focal_gamma)
  else:
    per_label = optax.sigmoid_binary_cross_entropy(logits, targets)
  if positive_weights is not None:  # only the positive term is up-weighted: -(w y log p + (1 - y) log(1 - p))
    per_label = per_label * (1.0 + (jnp.asarray(positive_weights) - 1.0) * targets)
  emotion = per_label.mean(-1)
  metrics = {
    "emotion_loss": _weighted_mean(emotion, weights),
    "exact_match": _weighted_mean(((logits > 0) == (targets > 0.5)).all(-1).astype(jnp.float32), weights),
  }
  loss = emotion_weight * metrics["emotion_loss"]
  if sentiment_weight > 0 and "sentiment_logits" in outputs:
    sentiment = optax.softmax_cross_entropy(outputs["sentiment_logits"].astype(jnp.float32), batch["sentiment"])
    metrics["sentiment_loss"] = _weighted_mean(sentiment, weights)
    loss = loss + sentiment_weight * metrics["sentiment_loss"]
  return loss, metrics


def make_loss(train_config, train_data=None):
  """`loss_fn(outputs, batch) -> (loss, metrics)` for the task of `train_data` (single- or multi-label; the
  multi-label loss weights its labels by their frequency in `train_data`)."""
  if train_data is None or not train_data.multi_label:
    return functools.partial(
      classification_loss,
      label_smoothing=train_config.label_smoothing,
      confidence_weight=train_config.confidence_weight,
      auxiliary_weight=train_config.get("auxiliary_weight", 0.0),
      class_weights=None if train_data is None else train_data.metadata.get("class_weights"),
    )
  if train_config.class_weight_power < 0 or train_config.focal_gamma < 0:
    raise ValueError(
      "config.train.class_weight_power and config.train.focal_gamma must be >= 0 "
      f"(got {train_config.class_weight_power}, {train_config.focal_gamma})."
    )
  positive_weights = None
  if train_config.class_weight_power > 0:
    positive_weights = positive_class_weights(
      train_data.arrays["labels"], train_config.class_weight_power, train_config.max_class_weight
    )
  return functools.partial(
    multilabel_loss,
    positive_weights=positive_weights,
    focal_gamma=train_config.focal_gamma,
    emotion_weight=train_config.emotion_loss_weight,
    sentiment_weight=train_config.sentiment_loss_weight,
  )
