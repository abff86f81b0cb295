"""Face models for 48x48 grayscale expressions (FER2013 and the synthetic default)."""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.models.landmark_graph import AdaptiveFeatureWeighting, LandmarkGraphEncoder
from emojax.models.layers import AttentionPooling, ChannelSpatialAttention, ConvBatchNormReLU, max_pool_2x2
from emojax.models.swin import SwinRefinement

SWIN_RESOLUTION = 12  # the CNN feature map the Swin refinement and the landmark graph read (48x48 input / 4)


def _feature_groups(model, batch, cnn_features, feature_map, train: bool) -> dict:
  """The feature groups a face CNN's classifier reads: its own, plus, by config switch, the pooled Swin
  refinement of its 12x12 feature map (`swin=True`) and the landmark graph's embedding, the graph reading
  the same map at each landmark (`landmark_graph=True`). Called inside the model's __call__."""
  groups = {"cnn": cnn_features}
  if (model.swin or model.landmark_graph) and feature_map is None:
    raise ValueError(
      f"config.model.swin and landmark_graph read the CNN's {SWIN_RESOLUTION}x{SWIN_RESOLUTION} "
      "feature map, and this model never produces one; use 48x48 inputs (and stem_pool=True for "
      "ResidualAttentionCNN)."
    )
  if model.swin:
    _, groups["swin"] = SwinRefinement(
      model.swin_features,
      model.swin_depths,
      model.swin_heads,
      model.swin_window,
      dtype=model.dtype,
      name="swin_refinement",
    )(feature_map, train)
  if model.landmark_graph:
    if not model.landmark_edges or "landmarks" not in batch:
      raise ValueError(
        "config.model.landmark_graph=True needs landmarks: set config.data.landmark_cache to the "
        "folder emojax.data.extract_landmarks wrote."
      )
    groups["landmarks"], _ = LandmarkGraphEncoder(
      model.landmark_edges, model.landmark_features, model.landmark_layers, dtype=model.dtype, name="landmark_graph"
    )(batch["landmarks"], batch["image"].astype(jnp.float32), batch["landmarks_found"], feature_map, train)
  return groups


def _combine(model, groups: dict):
  """-> (embedding, extra outputs): the groups concatenated, or, with `adaptive_weighting=True`, mixed by
  input-dependent weights that come back as `group_weight_<name>` [B]."""
  if not model.adaptive_weighting:
    return jnp.concatenate([g.astype(model.dtype) for g in groups.values()], axis=-1), {}
  embedding, weights = AdaptiveFeatureWeighting(model.adaptive_features, dtype=model.dtype, name="adaptive_weighting")(
    groups
  )
  return embedding, {f"group_weight_{name}": w for name, w in weights.items()}


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
  swin: bool = False  # Swin refinement of the 12x12 map (after block 2) beside the dense head
  swin_features: int = 96
  swin_depths: Sequence[int] = (2, 2)
  swin_heads: Sequence[int] = (3, 6)
  swin_window: int = 6
  landmark_graph: bool = False  # a landmark GAT reading the 12x12 map at each landmark, beside the dense head
  landmark_edges: Sequence[Sequence[int]] = ()  # from the data (config.data.landmark_cache)
  landmark_features: int = 64
  landmark_layers: int = 2
  adaptive_weighting: bool = False  # learned per-input weights over the feature groups instead of concatenation
  adaptive_features: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    x = batch["image"].astype(self.dtype)
    feature_map = None
    for features, dropout in zip(self.block_features, self.block_dropout, strict=True):
      for _ in range(self.convs_per_block):
        x = ConvBatchNormReLU(max(8, int(features * self.width)), dtype=self.dtype)(x, train)
      x = max_pool_2x2(x)
      x = nn.Dropout(dropout, deterministic=not train)(x)
      if feature_map is None and x.shape[1] == SWIN_RESOLUTION:
        feature_map = x
    x = x.reshape(x.shape[0], -1)
    for features in self.dense_features:
      x = nn.Dense(max(8, int(features * self.width)), use_bias=False, dtype=self.dtype)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
      x = nn.relu(x)
      x = nn.Dropout(self.dense_dropout, deterministic=not train)(x)
    x, extras = _combine(self, _feature_groups(self, batch, x, feature_map, train))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)
    return {"logits": logits.astype(jnp.float32), "embedding": x.astype(jnp.float32), **extras}


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
      residual = ConvBatchNormReLU(
        self.features, (1, 1), (self.strides,) * 2, activation=False, dtype=self.dtype, name="projection"
      )(residual, train)
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
  swin: bool = False  # Swin refinement of the 12x12 map (after the stage that reaches it) beside the CNN
  swin_features: int = 96
  swin_depths: Sequence[int] = (2, 2)
  swin_heads: Sequence[int] = (3, 6)
  swin_window: int = 6
  landmark_graph: bool = False  # a landmark GAT reading the 12x12 map at each landmark, beside the CNN
  landmark_edges: Sequence[Sequence[int]] = ()
  landmark_features: int = 64
  landmark_layers: int = 2
  adaptive_weighting: bool = False
  adaptive_features: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    x = batch["image"].astype(self.dtype)
    x = ConvBatchNormReLU(max(8, int(self.stage_features[0] * self.width)), dtype=self.dtype)(x, train)
    if self.stem_pool:
      x = max_pool_2x2(x)
    attention_maps, feature_map = {}, None
    for stage, features in enumerate(self.stage_features):
      for block in range(self.blocks_per_stage):
        strides = 2 if (block == 0 and stage > 0) else 1
        x = ResidualBlock(max(8, int(features * self.width)), strides, dtype=self.dtype)(x, train)
      x, attention_maps[f"stage{stage}"] = ChannelSpatialAttention(self.attention_reduction, dtype=self.dtype)(x)
      if feature_map is None and x.shape[1] == SWIN_RESOLUTION:
        feature_map = x
    embedding, extras = _combine(self, _feature_groups(self, batch, x.mean(axis=(1, 2)), feature_map, train))
    features = nn.Dropout(self.dropout, deterministic=not train)(embedding)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(features)
    confidence = nn.sigmoid(nn.Dense(1, dtype=self.dtype, name="confidence")(features))[:, 0]
    return {
      "logits": logits.astype(jnp.float32),
      "confidence": confidence.astype(jnp.float32),
      "embedding": embedding.astype(jnp.float32),
      "spatial_attention": attention_maps[f"stage{len(self.stage_features) - 1}"].astype(jnp.float32),
      **extras,
    }


class CNNBiLSTM(nn.Module):
  """A per-frame CNN, a bidirectional LSTM over frames, hierarchical attention and attention-gated frame fusion.

  Input: a clip (`clip` [B, T, 48, 48, 1] with `clip_mask` [B, T], 1 on real frames), or a single image
  (`image` [B, 48, 48, 1]), whose 12x12 CNN feature map is scanned top to bottom as a sequence of 12 rows.
  Attention is hierarchical: within each frame (or row) a learned softmax over its positions pools the
  feature map into one vector; across frames the BiLSTM states are pooled by a second softmax. The gate:
  each frame also has its own classifier (`frame_logits`, trained by `config.train.auxiliary_weight`), and
  its confidence (the largest class probability, held fixed) multiplies that frame's attention weight before
  renormalising, so frames the model cannot read (occluded, blurred, mid-blink) are suppressed
  (`frame_gate="confidence"`); `"learned"` gates with a sigmoid of the state instead, `"none"` not at all.
  Returns `spatial_attention` [B, T, P], `frame_attention` [B, T] (after gating) and `frame_gate` [B, T].
  """

  num_classes: int
  width: float = 1.0
  stage_features: Sequence[int] = (64, 128, 256)  # the last stage keeps the 12x12 resolution
  lstm_features: int = 128
  attention_hidden: int = 64
  frame_gate: str = "confidence"
  dropout: float = 0.3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    if self.frame_gate not in ("confidence", "learned", "none"):
      raise ValueError(f"config.model.frame_gate={self.frame_gate!r}; choose 'confidence', 'learned' or 'none'.")
    if "clip" in batch:
      frames = batch["clip"].astype(self.dtype)
      batch_size, length = frames.shape[:2]
      feature_map = self._frame_cnn(frames.reshape((-1,) + frames.shape[2:]), train)  # [B*T, h, w, C]
      positions = feature_map.reshape(batch_size, length, -1, feature_map.shape[-1])  # [B, T, P, C]
      mask = jnp.asarray(batch.get("clip_mask", jnp.ones((batch_size, length)))) > 0
    else:
      feature_map = self._frame_cnn(batch["image"].astype(self.dtype), train)  # [B, h, w, C]: rows as frames
      positions = feature_map
      mask = jnp.ones(feature_map.shape[:2], bool)
    batch_size, length, num_positions, channels = positions.shape
    # Level 1: attention within each frame, over its positions.
    pooled, spatial = AttentionPooling(self.attention_hidden, dtype=self.dtype, name="spatial_attention")(
      positions.reshape(batch_size * length, num_positions, channels),
      jnp.ones((batch_size * length, num_positions), bool),
    )
    x = nn.Dropout(self.dropout, deterministic=not train)(pooled.reshape(batch_size, length, channels))
    x = nn.Dense(self.lstm_features, dtype=self.dtype, name="project")(x)
    lengths = jnp.maximum(mask.sum(-1), 1)
    forward = nn.RNN(nn.OptimizedLSTMCell(self.lstm_features, dtype=self.dtype), name="lstm_forward")
    backward = nn.RNN(nn.OptimizedLSTMCell(self.lstm_features, dtype=self.dtype), name="lstm_backward")
    states = nn.Bidirectional(forward, backward)(x, seq_lengths=lengths)  # [B, T, 2H]
    frame_logits = nn.Dense(self.num_classes, dtype=self.dtype, name="frame_classifier")(states).astype(jnp.float32)
    # Level 2: attention over frames, gated by each frame's confidence.
    if self.frame_gate == "confidence":
      gate = jax.lax.stop_gradient(jax.nn.softmax(frame_logits).max(-1))
    elif self.frame_gate == "learned":
      gate = nn.sigmoid(nn.Dense(1, dtype=self.dtype, name="gate")(states)[..., 0]).astype(jnp.float32)
    else:
      gate = jnp.ones(mask.shape, jnp.float32)
    embedding, weights = AttentionPooling(self.attention_hidden, dtype=self.dtype, name="frame_attention")(
      states, mask, gate
    )
    features = nn.Dropout(self.dropout, deterministic=not train)(embedding)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(features)
    return {
      "logits": logits.astype(jnp.float32),
      "embedding": embedding.astype(jnp.float32),
      "frame_logits": frame_logits,
      "frame_mask": mask.astype(jnp.float32),
      "frame_attention": weights,
      "frame_gate": gate,
      "spatial_attention": spatial.reshape(batch_size, length, num_positions).astype(jnp.float32),
    }

  def _frame_cnn(self, x, train: bool):
    """Conv blocks (two 3x3 conv + BN + ReLU each); the first two halve the resolution (48 -> 12)."""
    for stage, features in enumerate(self.stage_features):
      for _ in range(2):
        x = ConvBatchNormReLU(max(8, int(features * self.width)), dtype=self.dtype)(x, train)
      if stage < 2:
        x = max_pool_2x2(x)
    return x
