"""Losses over model output dicts. Each returns (scalar loss, dict of per-batch metrics).

Batches carry `valid` (1 for real examples, 0 for padding) so padded evaluation batches do not
count; training batches are all valid.
"""

import jax
import jax.numpy as jnp
import optax


def _weighted_mean(values, weights):
  return (values * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def classification_loss(outputs, batch, label_smoothing: float = 0.0, confidence_weight: float = 0.1):
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
  targets = optax.smooth_labels(jax.nn.one_hot(batch["label"], num_classes), label_smoothing)
  cross_entropy = optax.softmax_cross_entropy(logits, targets)
  metrics = {
      "cross_entropy": _weighted_mean(cross_entropy, weights),
      "accuracy": _weighted_mean((logits.argmax(-1) == batch["label"]).astype(jnp.float32), weights),
  }
  if "confidence" not in outputs:
    return metrics["cross_entropy"], metrics
  confidence = jnp.clip(outputs["confidence"], 1e-6, 1 - 1e-6)
  probs = jax.lax.stop_gradient(jax.nn.softmax(logits))
  hinted = confidence[:, None] * probs + (1 - confidence[:, None]) * targets
  hint_loss = -(targets * jnp.log(jnp.clip(hinted, 1e-12))).sum(-1) - confidence_weight * jnp.log(confidence)
  metrics["confidence"] = _weighted_mean(confidence, weights)
  metrics["confidence_loss"] = _weighted_mean(hint_loss, weights)
  return metrics["cross_entropy"] + metrics["confidence_loss"], metrics
