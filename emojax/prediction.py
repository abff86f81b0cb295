"""The prediction loop: a model's outputs over every example of a split, in dataset order, on any mesh; and the
test-time mirror of faces."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from emojax import sharding
from emojax.data import pipeline
from emojax.metrics import GROUP_WEIGHT, PROBABILITY_FLOOR

# What evaluation keeps of a model's outputs (frame_*: CNNBiLSTM's attention over frames and its gate).
PREDICTION_KEYS = ("logits", "confidence", "sentiment_logits", "frame_attention", "frame_gate")


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
      outputs = {**outputs, "logits": jnp.log(jnp.clip(probabilities, PROBABILITY_FLOOR, 1.0))}
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
    padded[: len(indices)] = indices
    index_chunks.append(np.asarray(multihost_utils.process_allgather(jnp.asarray(padded), tiled=False)).ravel())
  outputs = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  indices = np.concatenate(index_chunks)
  keep = indices >= 0
  order = np.argsort(indices[keep], kind="stable")
  return {k: v[keep][order] for k, v in outputs.items()}
