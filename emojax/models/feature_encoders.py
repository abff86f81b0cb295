"""Encoders of per-example feature vectors, for the modalities of aligned sets that come as vectors.

* `FeatureMLP` ("features.mlp"): OpenFace action units, MOSI's openSMILE functionals and released text / video
  vectors. The vector is standardised with the training split's mean and standard deviation (the reader hands
  them over as `input_mean` / `input_std`, `data.aligned.vector_statistics`), then a small MLP. The statistics
  are kept in the `batch_stats` collection, so a checkpoint carries them and a restored model standardises
  exactly as it did in training, whatever data it is built beside.
* `ExportedEncoder` ("features.exported"): a frozen encoder that already ran: its run's export (`--mode=export`)
  supplies `embedding` and `logits` per example, which pass through unchanged. Fusion over a trained Conformer
  or MiniLM costs nothing per step this way, and is exactly fusion over those encoders frozen.

Both take `features` / `embedding` with any leading axes ([B, D] or, in the utterance-context graph, [B, U, D]).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class FeatureMLP(nn.Module):
  num_classes: int
  hidden: Sequence[int] = (128,)
  dropout: float = 0.3
  input_mean: Any = None  # [D] of the training split (from the data); None: 0, until a checkpoint brings them
  input_std: Any = None  # [D]; None: 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    x = batch["features"].astype(jnp.float32)
    dim = x.shape[-1]
    mean = self.variable("batch_stats", "input_mean", lambda: self._statistic(self.input_mean, 0.0, dim)).value
    std = self.variable("batch_stats", "input_std", lambda: self._statistic(self.input_std, 1.0, dim)).value
    x = (x - mean) / std
    for index, width in enumerate(self.hidden):
      x = nn.gelu(nn.Dense(width, dtype=self.dtype, name=f"hidden_{index}")(x))
    embedding = x
    x = nn.Dropout(self.dropout)(x, deterministic=not train)
    return {"logits": nn.Dense(self.num_classes, name="classifier")(x).astype(jnp.float32), "embedding": embedding}

  @staticmethod
  def _statistic(values, default: float, dim: int) -> jnp.ndarray:
    if values is None:
      return jnp.full((dim,), default, jnp.float32)
    values = np.asarray(values, np.float32)
    if values.shape != (dim,):
      raise ValueError(
        f"The input statistics have {values.shape[0]} values for {dim} features: the model was built "
        "beside another dataset than the one it reads."
      )
    return jnp.asarray(values)


class ExportedEncoder(nn.Module):
  """A frozen encoder's exported outputs, passed on: no parameters."""

  num_classes: int

  @nn.compact
  def __call__(self, batch, train: bool = False):
    if batch["logits"].shape[-1] != self.num_classes:
      raise ValueError(
        f"The exported logits have {batch['logits'].shape[-1]} classes, the dataset "
        f"{self.num_classes}: export the encoder run in the dataset's label space."
      )
    return {"logits": batch["logits"].astype(jnp.float32), "embedding": batch["embedding"].astype(jnp.float32)}
