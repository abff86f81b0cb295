"""Fusion over modality nodes: graph construction with absent nodes, invariance to node order, missing
modalities never read, and the decision-level weightings against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax.models import fusion

MODALITIES = ("face", "speech", "text")
DIMS = {"face": 12, "speech": 10, "text": 16}


def _batch(present, seed=0, num_classes=7):
  rng = np.random.default_rng(seed)
  batch = {"present": np.asarray(present, np.float32)}
  for m in MODALITIES:
    batch[f"{m}_embedding"] = rng.standard_normal((len(present), DIMS[m])).astype(np.float32)
    batch[f"{m}_logits"] = rng.standard_normal((len(present), num_classes)).astype(np.float32) * 2
    batch[f"{m}_confidence"] = rng.uniform(0.1, 0.9, len(present)).astype(np.float32)
  return batch


def test_adjacency_of_each_graph():
  full = fusion.modality_adjacency(MODALITIES, "full")
  assert full.sum() == 9
  star = fusion.modality_adjacency(MODALITIES, "star:text")
  np.testing.assert_array_equal(star, [[1, 0, 1], [0, 1, 1], [1, 1, 1]])
  chain = fusion.modality_adjacency(MODALITIES, "chain")
  np.testing.assert_array_equal(chain, [[1, 1, 0], [1, 1, 1], [0, 1, 1]])
  np.testing.assert_array_equal(fusion.modality_adjacency(MODALITIES, "self"), np.eye(3))
  explicit = fusion.modality_adjacency(MODALITIES, "edges:face-speech,speech>text")
  np.testing.assert_array_equal(explicit, [[1, 1, 0], [1, 1, 1], [0, 0, 1]])
  with pytest.raises(ValueError, match="'voice'"):
    fusion.modality_adjacency(MODALITIES, "star:voice")
  with pytest.raises(ValueError, match="expected one of"):
    fusion.modality_adjacency(MODALITIES, "ring")


def test_graph_construction_leaves_absent_modalities_out():
  present = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1]], np.float32)
  nodes = jnp.ones((3, 3, 4))
  graph = fusion.modality_graphs(nodes, present, fusion.modality_adjacency(MODALITIES, "full"))
  np.testing.assert_array_equal(graph.n_node, [3, 2, 1, 4])       # padding graph: 3 absent slots + padding node
  np.testing.assert_array_equal(graph.n_edge, [9, 4, 1, 13])      # full graph on the present nodes, self-loops
  pad = 9
  senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
  absent_slots = {4, 6, 7}  # example 1 lacks speech (slot 1*3+1); example 2 lacks face and speech (6, 7)
  real = senders != pad
  assert not absent_slots & set(senders[real]) and not absent_slots & set(receivers[real])
  assert ((senders == pad) == (receivers == pad)).all()
  ids = np.asarray(fusion.node_graph_ids(present))
  np.testing.assert_array_equal(ids, [0, 0, 0, 1, 3, 1, 3, 3, 2, 3])


@pytest.mark.parametrize("name", ["gat", "concat"])
def test_absent_modalities_are_never_read(name):
  present = [[1, 0, 1], [0, 1, 1], [1, 1, 0]]
  model = (fusion.GATFusion(7, MODALITIES, feature_weighting="adaptive") if name == "gat"
           else fusion.ConcatFusion(7, MODALITIES, feature_weighting="gate"))
  batch = _batch(present)
  params = model.init(jax.random.key(0), batch)
  scrambled = dict(batch)
  for row, flags in enumerate(present):
    for m, flag in zip(MODALITIES, flags):
      if not flag:
        scrambled[f"{m}_embedding"] = scrambled[f"{m}_embedding"].copy()
        scrambled[f"{m}_embedding"][row] = 1e3
  first, second = model.apply(params, batch), model.apply(params, scrambled)
  np.testing.assert_allclose(first["logits"], second["logits"], atol=1e-5)
  assert (np.asarray(first["modality_weights"])[np.asarray(present) == 0] == 0).all()


def test_gat_fusion_is_invariant_to_the_order_of_its_nodes():
  batch = _batch([[1, 1, 1], [1, 0, 1], [0, 1, 0]])
  model = fusion.GATFusion(7, MODALITIES, graph="full", features=32, num_heads=4, feature_weighting="adaptive")
  params = model.init(jax.random.key(1), batch)
  order = (2, 0, 1)
  permuted_model = fusion.GATFusion(7, tuple(MODALITIES[i] for i in order), graph="full", features=32, num_heads=4,
                                    feature_weighting="adaptive")
  permuted_params = jax.tree.map(lambda x: x, params)
  table = params["params"]["modality_features"]["modality_embedding"]
  permuted_params["params"]["modality_features"]["modality_embedding"] = table[np.array(order)]
  permuted_batch = {**batch, "present": batch["present"][:, np.array(order)]}
  np.testing.assert_allclose(model.apply(params, batch)["logits"],
                             permuted_model.apply(permuted_params, permuted_batch)["logits"], atol=1e-5)
  # A star graph is not symmetric: moving its centre changes the result.
  star = fusion.GATFusion(7, MODALITIES, graph="star:face", features=32, num_heads=4)
  star_params = star.init(jax.random.key(1), batch)
  other = fusion.GATFusion(7, MODALITIES, graph="star:text", features=32, num_heads=4)
  assert not np.allclose(star.apply(star_params, batch)["logits"][0], other.apply(star_params, batch)["logits"][0])


def test_confidence_weighting_against_a_hand_computation():
  batch = _batch([[1, 1, 0], [0, 1, 1]], num_classes=4)
  probabilities = {m: jax.nn.softmax(batch[f"{m}_logits"], -1) for m in MODALITIES}
  for source in ("entropy", "max_probability", "heads"):
    model = fusion.ConfidenceWeightedFusion(4, MODALITIES, confidence=source)
    out = model.apply(model.init(jax.random.key(0), batch), batch)
    for row, names in ((0, ("face", "speech")), (1, ("speech", "text"))):
      def confidence(m):
        p = np.asarray(probabilities[m][row])
        if source == "entropy":
          return 1 + (p * np.log(p)).sum() / np.log(4)
        return p.max() if source == "max_probability" else batch[f"{m}_confidence"][row]
      expected = sum(confidence(m) * np.asarray(probabilities[m][row]) for m in names) / sum(map(confidence, names))
      np.testing.assert_allclose(np.exp(out["logits"][row]), expected, rtol=1e-5)
  mean = fusion.MeanEnsemble(4, MODALITIES)
  out = mean.apply(mean.init(jax.random.key(0), batch), batch)
  np.testing.assert_allclose(np.exp(out["logits"][1]), (probabilities["speech"][1] + probabilities["text"][1]) / 2,
                             rtol=1e-5)
  learned = fusion.ConfidenceWeightedFusion(4, MODALITIES, confidence="learned")
  params = learned.init(jax.random.key(0), batch)
  assert set(params["params"]) == {"log_temperature", "scale", "bias"}
  with pytest.raises(ValueError, match="confidence='vibes'"):
    fusion.ConfidenceWeightedFusion(4, MODALITIES, confidence="vibes").init(jax.random.key(0), batch)
