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
  """Softmax cross-entropy; with a `confidence` output, the confidence-weighted variant.

  Confidence-weighted: p' = c * p + (1 - c) * onehot(y); loss = -log p'(y) - confidence_weight * log c.
  The model can buy label hints with low confidence but pays for them, so c ends up high where the
  prediction is reliable. Only training uses the hints; evaluation reports the plain prediction.
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
  probs = jax.nn.softmax(logits)
  hinted = confidence[:, None] * probs + (1 - confidence[:, None]) * targets
  hinted_nll = -(targets * jnp.log(jnp.clip(hinted, 1e-12))).sum(-1)
  loss = hinted_nll - confidence_weight * jnp.log(confidence)
  metrics["confidence"] = _weighted_mean(confidence, weights)
  return _weighted_mean(loss, weights), metrics
