"""Face-landmark graphs with graph attention (jraph), and adaptive weighting of feature groups.

Nodes are face landmarks (`emojax.data.landmarks`: the 468 FaceMesh points or the 68-point subset) with
features: the point's position relative to the face's centre and size, the pixels of a small patch of the
face image around it, optionally the CNN feature map sampled there, and whether the face was found at all.
Edges are the FaceMesh tessellation or a k-NN graph, passed in as `edges` [E, 2]. Each graph-attention layer
scores edge (s -> r) from both nodes' states and their offset p_s - p_r, takes a softmax over r's incoming
edges (`jraph.segment_softmax`), and sums the messages; a learned attention readout pools the nodes.
There is no per-point identity embedding, so a mirrored face (points moved, indices kept) is as easy to read
as the original.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from emojax.models.layers import AttentionPooling

PATCH = 5  # side of the image patch sampled around each landmark, in pixels


def sample_at(feature_map, points, offsets=None):
  """Bilinear samples of `feature_map` [B, H, W, C] at `points` [B, P, 2] (x, y fractions of the image),
  each shifted by `offsets` [K, 2] pixels of the map (default: the point alone) -> [B, P, K * C].
  Positions outside the map take its nearest edge."""
  batch_size, height, width, channels = feature_map.shape
  if offsets is None:
    offsets = jnp.zeros((1, 2))
  rows = jnp.clip(points[:, :, None, 1] * height - 0.5 + offsets[None, None, :, 1], 0, height - 1)  # [B, P, K]
  cols = jnp.clip(points[:, :, None, 0] * width - 0.5 + offsets[None, None, :, 0], 0, width - 1)
  row0, col0 = jnp.floor(rows).astype(jnp.int32), jnp.floor(cols).astype(jnp.int32)
  row1, col1 = jnp.minimum(row0 + 1, height - 1), jnp.minimum(col0 + 1, width - 1)
  row_weight, col_weight = (rows - row0)[..., None], (cols - col0)[..., None]
  flat = feature_map.reshape(batch_size, height * width, channels)

  def gather(r, c):
    index = (r * width + c).reshape(batch_size, -1, 1)
    return jnp.take_along_axis(flat, index, axis=1).reshape(r.shape + (channels,))

  samples = (1 - row_weight) * (
    (1 - col_weight) * gather(row0, col0) + col_weight * gather(row0, col1)
  ) + row_weight * ((1 - col_weight) * gather(row1, col0) + col_weight * gather(row1, col1))
  return samples.reshape(samples.shape[:2] + (-1,))


def patch_offsets(size: int = PATCH):
  grid = jnp.arange(size) - (size - 1) / 2
  return jnp.stack(jnp.meshgrid(grid, grid, indexing="xy"), axis=-1).reshape(-1, 2)  # (dx, dy)


class GraphAttentionLayer(nn.Module):
  """One multi-head GAT layer with the senders' offsets in the scores and messages; residual, layer norm."""

  features: int
  heads: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, positions):
    nodes, senders, receivers = graph.nodes, graph.senders, graph.receivers
    head_dim = self.features // self.heads
    offset = positions[senders] - positions[receivers]  # [E, 2]
    edge_input = jnp.concatenate([nodes[senders], offset.astype(nodes.dtype)], axis=-1)
    messages = nn.Dense(self.features, dtype=self.dtype, name="message")(edge_input).reshape(-1, self.heads, head_dim)
    query = nn.Dense(self.features, dtype=self.dtype, name="query")(nodes).reshape(-1, self.heads, head_dim)
    key = nn.Dense(self.features, dtype=self.dtype, name="key")(edge_input).reshape(-1, self.heads, head_dim)
    scores = (query[receivers] * key).sum(-1).astype(jnp.float32) / jnp.sqrt(head_dim)  # [E, heads]
    weights = jraph.segment_softmax(scores, receivers, num_segments=nodes.shape[0])
    aggregated = jax.ops.segment_sum(
      messages * weights[..., None].astype(messages.dtype), receivers, num_segments=nodes.shape[0]
    ).reshape(-1, self.features)
    residual = (
      nodes if nodes.shape[-1] == self.features else nn.Dense(self.features, dtype=self.dtype, name="residual")(nodes)
    )
    updated = nn.LayerNorm(dtype=self.dtype)(residual + nn.gelu(aggregated))
    return graph._replace(nodes=updated)


class LandmarkGraphEncoder(nn.Module):
  """Landmarks (+ image, + optional CNN feature map) -> a graph embedding [B, features] and node weights."""

  edges: Sequence[Sequence[int]]
  features: int = 64
  num_layers: int = 3
  heads: int = 4
  dropout: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, points, image, found, feature_map=None, train: bool = False):
    batch_size, num_points = points.shape[:2]
    center = points.mean(axis=1, keepdims=True)
    scale = jnp.maximum(jnp.linalg.norm(points - center, axis=-1).mean(axis=1, keepdims=True)[..., None], 1e-3)
    relative = (points - center) / scale  # the face's shape, free of its position and size
    parts = [
      relative,
      sample_at(image, points, patch_offsets()),
      jnp.broadcast_to(found[:, None, None], (batch_size, num_points, 1)),
    ]
    if feature_map is not None:
      parts.append(sample_at(feature_map.astype(jnp.float32), points))
    nodes = nn.Dense(self.features, dtype=self.dtype, name="embed")(jnp.concatenate(parts, -1).astype(self.dtype))
    edges = jnp.asarray(self.edges, jnp.int32)
    # B graphs of the same shape, batched jraph-style: one big graph with node ids offset per face.
    shift = (jnp.arange(batch_size) * num_points)[:, None]
    graph = jraph.GraphsTuple(
      nodes=nodes.reshape(batch_size * num_points, -1),
      edges=None,
      senders=(edges[None, :, 0] + shift).reshape(-1),
      receivers=(edges[None, :, 1] + shift).reshape(-1),
      globals=None,
      n_node=jnp.full((batch_size,), num_points),
      n_edge=jnp.full((batch_size,), len(self.edges)),
    )
    flat_positions = relative.reshape(batch_size * num_points, 2)
    for layer in range(self.num_layers):
      graph = GraphAttentionLayer(self.features, self.heads, dtype=self.dtype, name=f"gat{layer}")(
        graph, flat_positions
      )
      graph = graph._replace(nodes=nn.Dropout(self.dropout, deterministic=not train)(graph.nodes))
    node_states = graph.nodes.reshape(batch_size, num_points, -1)
    return AttentionPooling(self.features, dtype=self.dtype, name="readout")(
      node_states, jnp.ones((batch_size, num_points), bool)
    )


class AdaptiveFeatureWeighting(nn.Module):
  """Input-dependent weights over feature groups: each group is projected to `features`, a small network
  reads all of them and gives softmax weights w [B, G], and the output is sum_g w_g z_g (times G, so the
  scale does not shrink with the number of groups). The weights come back so they can be logged."""

  features: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, groups: dict):
    names = list(groups)
    projected = jnp.stack(
      [nn.Dense(self.features, dtype=self.dtype, name=f"project_{n}")(groups[n]) for n in names], axis=1
    )  # [B, G, F]
    hidden = nn.relu(
      nn.Dense(self.features, dtype=self.dtype, name="gate_hidden")(projected.reshape(projected.shape[0], -1))
    )
    weights = jax.nn.softmax(nn.Dense(len(names), dtype=self.dtype, name="gate")(hidden).astype(jnp.float32), -1)
    fused = jnp.einsum("bg,bgf->bf", weights.astype(projected.dtype), projected) * len(names)
    return fused, {name: weights[:, g] for g, name in enumerate(names)}


class LandmarkGAT(nn.Module):
  """The landmark-only face model: a graph-attention network over the face's landmarks and the pixels
  around them, no CNN. Batches carry `image`, `landmarks` [B, P, 2] and `landmarks_found` [B]."""

  num_classes: int
  landmark_edges: Sequence[Sequence[int]] = ()  # from the data (config.data.landmark_cache)
  features: int = 64
  num_layers: int = 3
  heads: int = 4
  dropout: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    if not self.landmark_edges:
      raise ValueError(
        "LandmarkGAT needs the landmark graph: set config.data.landmark_cache to the folder "
        "emojax.data.extract_landmarks wrote."
      )
    embedding, node_weights = LandmarkGraphEncoder(
      self.landmark_edges, self.features, self.num_layers, self.heads, self.dropout, self.dtype, name="graph"
    )(batch["landmarks"], batch["image"].astype(jnp.float32), batch["landmarks_found"], train=train)
    features = nn.Dropout(self.dropout, deterministic=not train)(embedding)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(features)
    return {
      "logits": logits.astype(jnp.float32),
      "embedding": embedding.astype(jnp.float32),
      "node_attention": node_weights,
    }
