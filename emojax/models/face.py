"""Face models for 48x48 grayscale expressions (FER2013 and the synthetic default)."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from emojax.models.layers import ChannelSpatialAttention, ConvBatchNormReLU
from emojax.models.swin import SwinRefinement

SWIN_RESOLUTION = 12  # the CNN feature map the Swin refinement reads (48x48 input / 4)


def _refine(model, feature_map, train: bool):
  """`config.model.swin=True`: the pooled features of Swin stages over a face CNN's 12x12 feature map (the
  model's `swin_*` fields), to join the CNN's before the classifier. Called inside the model's __call__."""
  _, pooled = SwinRefinement(model.swin_features, model.swin_depths, model.swin_heads, model.swin_window,
                             dtype=model.dtype, name="swin_refinement")(feature_map, train)
  return pooled


def _swin_features(pooled):
  if pooled is None:
    raise ValueError(f"config.model.swin=True refines the CNN's {SWIN_RESOLUTION}x{SWIN_RESOLUTION} feature map, and "
                     "this model never produces one; use 48x48 inputs (and stem_pool=True for ResidualAttentionCNN).")
  return pooled


class DeepCNN(nn.Module):
  """The published FER2013 CNN: four conv blocks 64->128->256->512, batch norm after every conv,
  max pooling and rising dropout (0.25 -> 0.5) per block, then two dense layers with dropout 0.5.

  `width` scales every channel count (1.0 is the published model; smaller widths fit a CPU budget).
  """
  num_classes: int
  width: float = 1.0
  block_features: Sequence[int] = (64, 128, 256, 512)
  convs_per_block: int = 2
  block_dropout: Sequence[float] = (0.25, 0.25, 0.4, 0.5)
  dense_features: Sequence[int] = (512, 256)
  dense_dropout: float = 0.5
  swin: bool = False                 # Swin refinement of the 12x12 map (after block 2) beside the dense head
  swin_features: int = 96
  swin_depths: Sequence[int] = (2, 2)
  swin_heads: Sequence[int] = (3, 6)
  swin_window: int = 6
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    x = batch["image"].astype(self.dtype)
    swin = None
    for features, dropout in zip(self.block_features, self.block_dropout, strict=True):
      for _ in range(self.convs_per_block):
        x = ConvBatchNormReLU(max(8, int(features * self.width)), dtype=self.dtype)(x, train)
      x = nn.max_pool(x, (2, 2), (2, 2))
      x = nn.Dropout(dropout, deterministic=not train)(x)
      if self.swin and swin is None and x.shape[1] == SWIN_RESOLUTION:
        swin = _refine(self, x, train)
    x = x.reshape(x.shape[0], -1)
    for features in self.dense_features:
      x = nn.Dense(max(8, int(features * self.width)), use_bias=False, dtype=self.dtype)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
      x = nn.relu(x)
      x = nn.Dropout(self.dense_dropout, deterministic=not train)(x)
    if self.swin:
      x = jnp.concatenate([x, _swin_features(swin).astype(x.dtype)], axis=-1)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)
    return {"logits": logits.astype(jnp.float32), "embedding": x.astype(jnp.float32)}


class ResidualBlock(nn.Module):
  features: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    residual = x
    y = ConvBatchNormReLU(self.features, strides=(self.strides,) * 2, dtype=self.dtype)(x, train)
    y = ConvBatchNormReLU(self.features, activation=False, dtype=self.dtype)(y, train)
    if residual.shape != y.shape:
      residual = ConvBatchNormReLU(self.features, (1, 1), (self.strides,) * 2, activation=False,
                                   dtype=self.dtype, name="projection")(residual, train)
    return nn.relu(y + residual)


class ResidualAttentionCNN(nn.Module):
  """Residual CNN with feature attention and a confidence-weighted prediction head.

  Stages of residual blocks are each followed by channel+spatial feature attention. The head
  predicts class logits and a scalar confidence c in (0, 1) from the pooled features. Training
  (see `emojax.losses`) interpolates the prediction towards the label in proportion to 1 - c and
  charges -log c for it (DeVries & Taylor, 2018), so c learns how far to trust each prediction;
  fusion later weights this modality's vote by it.
  """
  num_classes: int
  width: float = 1.0
  stage_features: Sequence[int] = (64, 128, 256)
  blocks_per_stage: int = 2
  attention_reduction: int = 8
  stem_pool: bool = True  # 48 -> 24 after the stem, as a ResNet stem does; 4x cheaper
  dropout: float = 0.4
  swin: bool = False      # Swin refinement of the 12x12 map (after the stage that reaches it) beside the CNN
  swin_features: int = 96
  swin_depths: Sequence[int] = (2, 2)
  swin_heads: Sequence[int] = (3, 6)
  swin_window: int = 6
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    x = batch["image"].astype(self.dtype)
    x = ConvBatchNormReLU(max(8, int(self.stage_features[0] * self.width)), dtype=self.dtype)(x, train)
    if self.stem_pool:
      x = nn.max_pool(x, (2, 2), (2, 2))
    attention_maps, swin = {}, None
    for stage, features in enumerate(self.stage_features):
      for block in range(self.blocks_per_stage):
        strides = 2 if (block == 0 and stage > 0) else 1
        x = ResidualBlock(max(8, int(features * self.width)), strides, dtype=self.dtype)(x, train)
      x, attention_maps[f"stage{stage}"] = ChannelSpatialAttention(self.attention_reduction, dtype=self.dtype)(x)
      if self.swin and swin is None and x.shape[1] == SWIN_RESOLUTION:
        swin = _refine(self, x, train)
    embedding = x.mean(axis=(1, 2))
    if self.swin:
      embedding = jnp.concatenate([embedding, _swin_features(swin).astype(embedding.dtype)], axis=-1)
    features = nn.Dropout(self.dropout, deterministic=not train)(embedding)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(features)
    confidence = nn.sigmoid(nn.Dense(1, dtype=self.dtype, name="confidence")(features))[:, 0]
    return {
        "logits": logits.astype(jnp.float32),
        "confidence": confidence.astype(jnp.float32),
        "embedding": embedding.astype(jnp.float32),
        "spatial_attention": attention_maps[f"stage{len(self.stage_features) - 1}"].astype(jnp.float32),
    }
