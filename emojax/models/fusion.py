"""Fusion of per-modality encoder outputs: graph attention over modality nodes, decision-level and
feature-level baselines. Every method takes the same batch and copes with missing modalities.

Batch: for each modality `m` of `modalities`, `{m}_embedding` [B, D_m] (the encoder's pooled features)
and `{m}_logits` [B, K] (its class scores, for the decision-level methods), optionally
`{m}_confidence` [B]; and `present` [B, M], 1 where the example has that modality. An absent
modality's arrays may hold anything: no method reads them into the result.

* `GATFusion`: each present modality is a node of a jraph graph (absent ones are not nodes of the
  example's graph: their slots and edges are routed to jraph's padding graph), edges from `graph`
  (see `modality_adjacency`), multi-head graph attention layers, mean readout over the nodes, classifier.
* `ConcatFusion` (the DNN fusion baseline): projected embeddings, zeros for absent modalities,
  presence flags, an MLP.
* `ConfidenceWeightedFusion` (decision level): each present modality's probabilities weighted by its
  confidence (`entropy`, `max_probability`, the encoder's confidence head, or a learned calibration).
* `MeanEnsemble`: the mean of the present modalities' probabilities.

`feature_weighting` ("gate" or "adaptive") reweights the projected modality features before GATFusion
and ConcatFusion: an attention gate per modality, or softmax weights over the present modalities;
the weights come back as `modality_weights` [B, M] so a researcher can see what the model relied on.
"""

import re
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

GRAPHS = ("full", "star", "chain", "self", "edges")


def modality_adjacency(modalities: Sequence[str], graph: str) -> np.ndarray:
  """[M, M] 0/1 matrix, A[i, j] = 1 when modality j receives a message from modality i (self-loops always).

  `graph`: "full"; "star:<centre>" (the centre and every other modality, both ways); "chain" (neighbours in
  `modalities` order, both ways); "self" (self-loops only: no exchange, a late-fusion control);
  "edges:a-b;b>c" (explicit: `a-b` both ways, `b>c` from b to c; `,` works too outside a config argument).
  """
  modalities = list(modalities)
  kind, _, argument = graph.partition(":")
  adjacency = np.eye(len(modalities), dtype=np.int32)
  index = {name: i for i, name in enumerate(modalities)}

  def lookup(name):
    if name not in index:
      raise ValueError(f"graph={graph!r} names modality {name!r}; the modalities are {modalities}.")
    return index[name]

  if kind == "full":
    adjacency[:] = 1
  elif kind == "star":
    centre = lookup(argument)
    adjacency[centre, :] = adjacency[:, centre] = 1
  elif kind == "chain":
    for i in range(len(modalities) - 1):
      adjacency[i, i + 1] = adjacency[i + 1, i] = 1
  elif kind == "edges":
    for edge in filter(None, re.split(r"[,;]", argument)):
      both = "-" in edge
      a, _, b = edge.partition("-" if both else ">")
      if not b:
        raise ValueError(f"Edge {edge!r} in graph={graph!r}: write 'a-b' (both ways) or 'a>b' (a to b).")
      adjacency[lookup(a), lookup(b)] = 1
      if both:
        adjacency[lookup(b), lookup(a)] = 1
  elif kind != "self":
    raise ValueError(
      f"config.model.graph={graph!r}; expected one of 'full', 'star:<modality>', 'chain', 'self' or 'edges:a-b;b>c'."
    )
  return adjacency


def modality_graphs(nodes, present, adjacency: np.ndarray) -> jraph.GraphsTuple:
  """A batch of B graphs over node features [B, M, D] as one jraph.GraphsTuple with static shapes.

  Node slot b*M + m belongs to graph b when modality m is present, else to the padding graph B (with the
  padding node B*M, jraph's convention); an edge is real only when both ends are present, otherwise it
  runs padding node -> padding node. So shapes never depend on which modalities are missing.
  """
  batch, num_modalities, _ = nodes.shape
  present = present.astype(bool)
  pad_node = batch * num_modalities
  slots = jnp.arange(batch)[:, None] * num_modalities + jnp.arange(num_modalities)[None]  # [B, M]
  senders_m, receivers_m = np.nonzero(adjacency)  # static
  senders = slots[:, senders_m]  # [B, E_m]
  receivers = slots[:, receivers_m]
  real = present[:, senders_m] & present[:, receivers_m]
  senders = jnp.where(real, senders, pad_node).reshape(-1)
  receivers = jnp.where(real, receivers, pad_node).reshape(-1)
  flat_nodes = jnp.concatenate([nodes.reshape(pad_node, -1), jnp.zeros((1, nodes.shape[-1]), nodes.dtype)])
  n_node = jnp.concatenate([present.sum(1), jnp.array([pad_node + 1]) - present.sum()]).astype(jnp.int32)
  n_edge = jnp.concatenate([real.sum(1), jnp.array([real.size]) - real.sum()]).astype(jnp.int32)
  return jraph.GraphsTuple(
    nodes=flat_nodes, edges=None, senders=senders, receivers=receivers, n_node=n_node, n_edge=n_edge, globals=None
  )


def node_graph_ids(present) -> jnp.ndarray:
  """The graph of every node slot (padding graph B for absent modalities and the padding node)."""
  batch = present.shape[0]
  ids = jnp.where(present.astype(bool), jnp.arange(batch)[:, None], batch).reshape(-1)
  return jnp.concatenate([ids, jnp.array([batch])])


class ModalityFeatures(nn.Module):
  """Projects each modality's embedding to `features`, adds a learned modality embedding, and optionally
  reweights them (`feature_weighting`: "none", "gate", "adaptive"). Returns ([B, M, F], weights [B, M])."""

  modalities: Sequence[str]
  features: int = 128
  feature_weighting: str = "none"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch):
    present = batch["present"].astype(jnp.float32)
    projected = [
      nn.LayerNorm(name=f"{m}_norm")(
        nn.Dense(self.features, dtype=self.dtype, name=f"{m}_projection")(batch[f"{m}_embedding"].astype(jnp.float32))
      )
      for m in self.modalities
    ]
    x = jnp.stack(projected, 1)
    x = x + self.param("modality_embedding", nn.initializers.normal(0.02), (len(self.modalities), self.features))
    if self.feature_weighting == "none":
      weights = present
    elif self.feature_weighting == "gate":  # attention gate: how much of each modality's features to pass on
      weights = jax.nn.sigmoid(nn.Dense(1, name="gate")(x)[..., 0]) * present
    elif self.feature_weighting == "adaptive":  # input-dependent softmax over the present modalities
      scores = nn.Dense(1, name="score")(jnp.tanh(nn.Dense(self.features, name="score_hidden")(x)))[..., 0]
      weights = jax.nn.softmax(jnp.where(present > 0, scores, -1e9), axis=-1) * present
      weights = weights * present.sum(1, keepdims=True)  # uniform weights leave the features unchanged
    else:
      raise ValueError(
        f"config.model.feature_weighting={self.feature_weighting!r}; expected 'none', 'gate' or 'adaptive'."
      )
    return x * weights[..., None], weights


def modality_classifiers(features, modalities, num_classes: int):
  """[B, M, K]: one linear classifier per modality on its projected features, for per-modality auxiliary
  losses (`config.train.auxiliary_weight`), which keep every modality's features predictive on their own."""
  return jnp.stack(
    [nn.Dense(num_classes, name=f"{m}_auxiliary_head")(features[:, i]) for i, m in enumerate(modalities)], 1
  )


def graph_attention(
  graph: jraph.GraphsTuple, features: int, num_heads: int, num_layers: int, dropout: float, train: bool
) -> jraph.GraphsTuple:
  """`num_layers` multi-head graph-attention layers (jraph.GAT; each node attends over the nodes that send to it,
  its own self-loop included), each followed by dropout, a residual connection and layer norm. Called inside a
  module's compact method, whose parameters (`layer_<i>_query`, ...) these become: GATFusion's modality graph and
  the utterance-context graph (models/context_graph.py) share the same layers."""
  if features % num_heads:
    raise ValueError(f"config.model.features={features} must be divisible by num_heads={num_heads}.")
  head_features = features // num_heads
  for index in range(num_layers):
    query = nn.Dense(features, name=f"layer_{index}_query")
    sender_score = nn.Dense(num_heads, use_bias=False, name=f"layer_{index}_sender_score")
    receiver_score = nn.Dense(num_heads, use_bias=False, name=f"layer_{index}_receiver_score")

    def attention_query(nodes, query=query):
      return query(nodes).reshape(nodes.shape[0], num_heads, head_features)

    def attention_logit(sent, received, edges, sender_score=sender_score, receiver_score=receiver_score):
      flat = lambda y: y.reshape(y.shape[0], -1)
      return nn.leaky_relu(sender_score(flat(sent)) + receiver_score(flat(received)), 0.2)[..., None]

    layer = jraph.GAT(attention_query, attention_logit, lambda nodes: nodes.reshape(nodes.shape[0], -1))
    updated = nn.Dropout(dropout)(layer(graph).nodes, deterministic=not train)
    graph = graph._replace(nodes=nn.LayerNorm(name=f"layer_{index}_norm")(graph.nodes + nn.gelu(updated)))
  return graph


class GATFusion(nn.Module):
  num_classes: int
  modalities: Sequence[str] = ("face", "speech", "text")
  graph: str = "full"
  features: int = 128
  num_heads: int = 4
  num_layers: int = 2
  feature_weighting: str = "none"
  auxiliary_heads: bool = False  # a classifier per modality on its own features (`modality_logits`)
  dropout: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    present = batch["present"]
    x, weights = ModalityFeatures(
      self.modalities, self.features, self.feature_weighting, self.dtype, name="modality_features"
    )(batch)
    graph = modality_graphs(x, present, modality_adjacency(self.modalities, self.graph))
    graph = graph_attention(graph, self.features, self.num_heads, self.num_layers, self.dropout, train)
    graph_ids = node_graph_ids(present)
    pooled = jraph.segment_mean(graph.nodes, graph_ids, num_segments=present.shape[0] + 1)[:-1]
    pooled = nn.Dropout(self.dropout)(pooled, deterministic=not train)
    outputs = {
      "logits": nn.Dense(self.num_classes, name="classifier")(pooled),
      "embedding": pooled,
      "modality_weights": weights,
    }
    if self.auxiliary_heads:
      outputs["modality_logits"] = modality_classifiers(x, self.modalities, self.num_classes)
    return outputs


class ConcatFusion(nn.Module):
  """The DNN fusion baseline: [projected embeddings (zeros where absent), presence flags] -> MLP."""

  num_classes: int
  modalities: Sequence[str] = ("face", "speech", "text")
  features: int = 128
  hidden: int = 256
  feature_weighting: str = "none"
  auxiliary_heads: bool = False
  dropout: float = 0.3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    present = batch["present"].astype(jnp.float32)
    x, weights = ModalityFeatures(
      self.modalities, self.features, self.feature_weighting, self.dtype, name="modality_features"
    )(batch)
    auxiliary = modality_classifiers(x, self.modalities, self.num_classes) if self.auxiliary_heads else None
    x = jnp.concatenate([x.reshape(x.shape[0], -1), present], -1)
    x = nn.Dropout(self.dropout)(nn.gelu(nn.Dense(self.hidden, name="hidden")(x)), deterministic=not train)
    outputs = {"logits": nn.Dense(self.num_classes, name="classifier")(x), "embedding": x, "modality_weights": weights}
    if auxiliary is not None:
      outputs["modality_logits"] = auxiliary
    return outputs


def _probabilities(batch, modalities):
  return jnp.stack([jax.nn.softmax(batch[f"{m}_logits"].astype(jnp.float32), -1) for m in modalities], 1)  # [B, M, K]


def _weighted_decision(probabilities, weights):
  """log of sum_m w_m p_m / sum_m w_m (w = 0 for absent modalities): fused log-probabilities as logits."""
  fused = (probabilities * weights[..., None]).sum(1) / jnp.maximum(weights.sum(1, keepdims=True), 1e-9)
  return jnp.log(jnp.clip(fused, 1e-9, 1.0))


class MeanEnsemble(nn.Module):
  """The mean of the present modalities' probability distributions. No parameters."""

  num_classes: int
  modalities: Sequence[str] = ("face", "speech", "text")

  @nn.compact
  def __call__(self, batch, train: bool = False):
    probabilities = _probabilities(batch, self.modalities)
    weights = batch["present"].astype(jnp.float32)
    return {
      "logits": _weighted_decision(probabilities, weights),
      "embedding": probabilities.reshape(len(weights), -1),
      "modality_weights": weights,
    }


class ConfidenceWeightedFusion(nn.Module):
  """sum_m c_m p_m / sum_m c_m over the present modalities, c_m the modality's confidence in this example.

  `confidence`: "entropy" (1 - H(p) / log K), "max_probability", "heads" (the encoders' own `{m}_confidence`
  outputs), or "learned": a per-modality temperature and a logistic map of (max probability, normalised
  entropy) to a confidence, trained through the fused prediction's loss (a learned calibration).
  """

  num_classes: int
  modalities: Sequence[str] = ("face", "speech", "text")
  confidence: str = "entropy"

  @nn.compact
  def __call__(self, batch, train: bool = False):
    present = batch["present"].astype(jnp.float32)
    logits = jnp.stack([batch[f"{m}_logits"].astype(jnp.float32) for m in self.modalities], 1)
    if self.confidence == "learned":
      log_temperature = self.param("log_temperature", nn.initializers.zeros, (len(self.modalities),))
      logits = logits / jnp.exp(log_temperature)[None, :, None]
    probabilities = jax.nn.softmax(logits, -1)
    entropy = -(probabilities * jnp.log(jnp.clip(probabilities, 1e-9))).sum(-1) / np.log(self.num_classes)
    if self.confidence == "entropy":
      confidence = 1.0 - entropy
    elif self.confidence == "max_probability":
      confidence = probabilities.max(-1)
    elif self.confidence == "heads":
      missing = [m for m in self.modalities if f"{m}_confidence" not in batch]
      if missing:
        raise ValueError(
          f"config.model.confidence='heads' reads each encoder's confidence head, and {missing} "
          "bring none (of the encoders here only ResidualAttentionCNN has one, and only end-to-end "
          "fusion passes it on); use 'entropy', 'max_probability' or 'learned'."
        )
      confidence = jnp.stack([batch[f"{m}_confidence"].astype(jnp.float32) for m in self.modalities], 1)
    elif self.confidence == "learned":
      cues = jnp.stack([probabilities.max(-1), entropy], -1)  # [B, M, 2]
      scale = self.param("scale", nn.initializers.zeros, (len(self.modalities), 2))
      bias = self.param("bias", nn.initializers.zeros, (len(self.modalities),))
      confidence = jax.nn.sigmoid((cues * scale).sum(-1) + bias)
    else:
      raise ValueError(
        f"config.model.confidence={self.confidence!r}; expected 'entropy', 'max_probability', 'heads' or 'learned'."
      )
    weights = confidence * present
    return {
      "logits": _weighted_decision(probabilities, weights),
      "embedding": probabilities.reshape(len(present), -1),
      "modality_weights": weights,
    }
