"""Utterance context: one graph per video with a node per (utterance, modality), read out per utterance.

    a video's U utterances x M modalities -> each modality's encoder on every utterance -> node (u, m)
    edges: across modalities within an utterance  ("cross": `graph`, as GATFusion's modality graph)
           along time within a modality            ("time": up to `window` utterances away; `causal`: earlier only)
           self-loops
    -> the graph-attention layers of GATFusion (`fusion.graph_attention`)
    -> the example's own utterance: mean of its nodes -> classifier

An example is one utterance; its batch carries its whole video (`data.aligned.utterance_context`): per modality the
encoder inputs [B, U, ...] and `{m}_present` [B, U], and `utterance_position` [B], its own slot. `present` [B, M]
says which modalities the example keeps (modality dropout and the robustness table hide a modality in the whole
video). `edges` ablates the edge types from the config: "cross+time" (default), "cross" (no context: per-utterance
fusion in the same model and parameters), "time" (context within each modality, no exchange between them) or
"none" (self-loops only). Nodes of padded slots and hidden modalities sit in jraph's padding graph, so no message
reaches a real node from them, and shapes stay static. After L layers an utterance's readout depends only on
the utterances within L * window of it, so by default (`receptive_field_only`) only those are built: the same
logits as the whole video's graph (tested), at a fraction of the cost. The utterance-level reference with context
is bc-LSTM (Poria et al., ACL 2017), which reads the neighbouring utterances with a bidirectional LSTM.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from emojax.models.fusion import ModalityFeatures, graph_attention, modality_adjacency, modality_graphs
from emojax.models.multimodal import build_module

# The context batch's extra source (data/aligned.utterance_context): each utterance's position in its video.
CONTEXT_SOURCE = "utterance"

EDGE_KINDS = ("cross", "time")


def edge_kinds(edges: str) -> set[str]:
  kinds = set() if edges == "none" else set(edges.split("+"))
  if not kinds <= set(EDGE_KINDS) or (edges != "none" and "" in edges.split("+")):
    raise ValueError(f"config.model.edges={edges!r}; expected 'cross+time', 'cross', 'time' or 'none'.")
  return kinds


def context_adjacency(
  num_utterances: int, modalities, graph: str = "full", window: int = 2, edges: str = "cross+time", causal: bool = False
) -> np.ndarray:
  """[U*M, U*M] 0/1, A[i, j] = 1 when node j receives from node i; node (u, m) is u * M + m. Self-loops always;
  "cross": modality_adjacency(modalities, graph) within every utterance; "time": (u, m) -> (v, m) for
  0 < |u - v| <= window (causal: u < v only)."""
  kinds = edge_kinds(edges)
  if window < 0:
    raise ValueError(f"config.model.window={window} must be >= 0.")
  count = len(modalities)
  size = num_utterances * count
  adjacency = np.eye(size, dtype=np.int32)
  if "cross" in kinds:
    adjacency |= np.kron(np.eye(num_utterances, dtype=np.int32), modality_adjacency(modalities, graph))
  if "time" in kinds:
    offset = np.arange(num_utterances)[None, :] - np.arange(num_utterances)[:, None]  # [sender, receiver]: v - u
    near = (np.abs(offset) <= window) & (offset != 0) & ((offset > 0) if causal else True)
    adjacency |= np.kron(near.astype(np.int32), np.eye(count, dtype=np.int32))
  return adjacency


def receptive_field(node_present, inputs: dict, position, radius: int):
  """The utterances position - radius ... position + radius of every example's video (slots past the video's ends
  absent), with the example's own at the centre: (node_present [B, 2r+1, M], inputs, new position [B])."""
  slots = node_present.shape[1]
  index = position[:, None] + jnp.arange(-radius, radius + 1)[None]  # [B, W]
  inside = ((index >= 0) & (index < slots)).astype(node_present.dtype)
  index = jnp.clip(index, 0, slots - 1)

  def take(value):
    return jnp.take_along_axis(value, index.reshape(index.shape + (1,) * (value.ndim - 2)), axis=1)

  inputs = {m: {key: take(value) for key, value in keys.items()} for m, keys in inputs.items()}
  return take(node_present) * inside[..., None], inputs, jnp.full_like(position, radius)


class UtteranceContextGAT(nn.Module):
  num_classes: int
  encoders: Any  # {modality: encoder model config}
  modalities: Any = None  # node order = the data's `present` columns; None: the encoders' keys
  encoder_kwargs: Any = None  # {modality: encoder fields from the data (training-split statistics)}
  label_maps: Any = None  # unused: aligned sets predict their own classes (accepted from the data)
  graph: str = "full"  # cross-modal edges within an utterance (fusion.modality_adjacency)
  window: int = 2  # time edges reach this many utterances away
  edges: str = "cross+time"  # which edge types: "cross+time", "cross", "time", "none"
  causal: bool = False  # time edges only from earlier utterances to later ones
  features: int = 128
  num_heads: int = 4
  num_layers: int = 2
  dropout: float = 0.1
  receptive_field_only: bool = True  # build only the utterances that can reach the example's own (same result)

  @nn.compact
  def __call__(self, batch, train: bool = False):
    modalities = tuple(self.modalities or self.encoders)
    if set(modalities) != set(self.encoders):
      raise ValueError(f"config.model.modalities={modalities} must name the encoders {sorted(self.encoders)}.")
    if CONTEXT_SOURCE in modalities:
      raise ValueError(f"A modality may not be named {CONTEXT_SOURCE!r} (the context batch's own key).")
    if f"{CONTEXT_SOURCE}_position" not in batch:
      raise ValueError(
        "The utterance-context graph reads whole videos: set config.data.context=True "
        "(configs/aligned.py:set=mosi,method=context)."
      )
    position = batch[f"{CONTEXT_SOURCE}_position"].astype(jnp.int32)  # [B]
    node_present = jnp.stack([batch[f"{m}_present"] for m in modalities], -1).astype(jnp.float32)  # [B, U, M]
    node_present = node_present * batch["present"].astype(jnp.float32)[:, None, :]
    inputs = {
      m: {key[len(m) + 1 :]: value for key, value in batch.items() if key.startswith(f"{m}_") and key != f"{m}_present"}
      for m in modalities
    }
    # After L layers an utterance hears only nodes within L * window utterances (time edges stay in a modality,
    # cross edges in an utterance), so the rest of the video cannot change its readout: leave it out.
    radius = self.window * self.num_layers if "time" in edge_kinds(self.edges) else 0
    if self.receptive_field_only and 2 * radius + 1 < node_present.shape[1]:
      node_present, inputs, position = receptive_field(node_present, inputs, position, radius)
    batch_size, slots, count = node_present.shape
    embeddings = {}
    for m in modalities:
      flat = {key: value.reshape((batch_size * slots,) + value.shape[2:]) for key, value in inputs[m].items()}
      extra = dict((self.encoder_kwargs or {}).get(m, {}))
      outputs = build_module(self.encoders[m], self.num_classes, **extra, name=f"{m}_encoder")(flat, train=train)
      embeddings[f"{m}_embedding"] = outputs["embedding"]
    x, _ = ModalityFeatures(modalities, self.features, name="modality_features")(
      {**embeddings, "present": node_present.reshape(batch_size * slots, count)}
    )
    adjacency = context_adjacency(slots, modalities, self.graph, self.window, self.edges, self.causal)
    graph = modality_graphs(
      x.reshape(batch_size, slots * count, self.features), node_present.reshape(batch_size, slots * count), adjacency
    )
    graph = graph_attention(graph, self.features, self.num_heads, self.num_layers, self.dropout, train)
    nodes = graph.nodes[:-1].reshape(batch_size, slots, count, self.features)
    own = jnp.take_along_axis(nodes, position[:, None, None, None], axis=1)[:, 0]  # [B, M, F]
    kept = jnp.take_along_axis(node_present, position[:, None, None], axis=1)[:, 0]  # [B, M]
    pooled = (own * kept[..., None]).sum(1) / jnp.maximum(kept.sum(1, keepdims=True), 1.0)
    pooled = nn.Dropout(self.dropout)(pooled, deterministic=not train)
    return {
      "logits": nn.Dense(self.num_classes, name="classifier")(pooled),
      "embedding": pooled,
      "modality_weights": kept,
    }
