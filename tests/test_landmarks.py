"""Landmark graphs: FaceMesh tessellation and k-NN edges, the landmark cache, points that move with the image,
the graph-attention models, and adaptive feature weighting."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from emojax import metrics, train
from emojax.data import augment, fer2013, landmarks
from emojax.models import get_model
from emojax.models.landmark_graph import AdaptiveFeatureWeighting, sample_at
from tests.conftest import tiny_config


def assert_symmetric_with_self_loops(edges, num_points):
  pairs = {tuple(e) for e in edges.tolist()}
  assert len(pairs) == len(edges)  # no duplicates
  assert pairs == {(r, s) for s, r in pairs}  # symmetric
  assert all((i, i) in pairs for i in range(num_points))  # self-loops
  assert edges.min() == 0 and edges.max() == num_points - 1


def test_facemesh_tessellation_graph():
  undirected = landmarks.tessellation_edges()
  assert undirected.shape == (1322, 2) and (undirected[:, 0] < undirected[:, 1]).all()
  edges = landmarks.graph_edges("facemesh")
  assert edges.shape == (2 * 1322 + 468, 2)
  assert_symmetric_with_self_loops(edges, 468)
  degree = np.bincount(edges[:, 1], minlength=468) - 1
  assert degree.min() >= 3 and degree.max() <= 10  # a triangle mesh


def test_68_point_subset_uses_a_knn_graph():
  assert len(set(landmarks.IBUG68)) == 68 and max(landmarks.IBUG68) < 468
  edges = landmarks.graph_edges("ibug68", k=4)
  assert_symmetric_with_self_loops(edges, 68)
  degree = np.bincount(edges[:, 1], minlength=68) - 1
  assert degree.min() >= 4 and len(edges) <= 2 * 68 * 4 + 68
  with pytest.raises(ValueError, match="tessellation joins all 468"):
    landmarks.graph_edges("ibug68", edges="tessellation")
  with pytest.raises(ValueError, match="landmark_knn"):
    landmarks.graph_edges("ibug68", k=0)


def write_cache(folder, split, ids, points=None, compact=False, seed=0):
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  shape = landmarks.mean_shape()
  found = rng.random(len(ids)) > 0.1
  values = shape[None] + rng.normal(0, 0.01, (len(ids),) + shape.shape) if points is None else points
  stored = landmarks.compact(values) if compact else values.astype(np.float16)
  np.savez_compressed(
    landmarks.cache_path(folder, "fer2013", split),
    ids=np.asarray(ids),
    landmarks=stored,
    found=found,
    points=np.arange(468, dtype=np.int32),
  )
  return values, found


def test_cache_rows_are_matched_by_id_and_subset_on_request(tmp_path):
  ids = np.array([f"happy/img{i}" for i in range(6)])
  values, found = write_cache(tmp_path, "train", ids[::-1])
  points, got_found = landmarks.load_cache(tmp_path, "fer2013", "train", ids)
  np.testing.assert_allclose(points, values[::-1], atol=1e-3)
  np.testing.assert_array_equal(got_found, found[::-1])
  subset, _ = landmarks.load_cache(tmp_path, "fer2013", "train", ids, points="ibug68")
  np.testing.assert_allclose(subset, values[::-1][:, list(landmarks.IBUG68)], atol=1e-3)
  write_cache(tmp_path, "validation", ids, compact=True)
  compact, _ = landmarks.load_cache(tmp_path, "fer2013", "validation", ids)
  assert compact.dtype == np.float32 and np.abs(compact - landmarks.mean_shape()).max() < 0.06
  with pytest.raises(ValueError, match="no landmarks for 1 of 7"):
    landmarks.load_cache(tmp_path, "fer2013", "train", np.append(ids, "sad/unknown"))
  with pytest.raises(FileNotFoundError, match="extract_landmarks"):
    landmarks.load_cache(tmp_path, "fer2013", "test", ids)


def test_points_move_with_the_augmented_image():
  config = ml_collections.ConfigDict(
    dict(
      enabled=True, crop_padding=4, flip=True, rotation_degrees=25.0, contrast=0.0, brightness=0.0, random_erasing=0.0
    )
  )
  points = np.array([[0.3, 0.25], [0.7, 0.6], [0.5, 0.8]], np.float32)
  for seed in range(6):
    for point in points:
      image = np.zeros((48, 48, 1), np.float32)
      y, x = np.mgrid[0:48, 0:48]
      image[..., 0] = np.exp(-((x + 0.5 - point[0] * 48) ** 2 + (y + 0.5 - point[1] * 48) ** 2) / 4.0)  # a blob
      moved_image, moved = augment.augment_image_and_points(image, point[None], np.random.default_rng(seed), config)
      weights = moved_image[..., 0] / moved_image[..., 0].sum()
      centre = np.array([(weights * (x + 0.5)).sum() / 48, (weights * (y + 0.5)).sum() / 48])
      np.testing.assert_allclose(moved[0], centre, atol=0.6 / 48)


def test_bilinear_sampling_reads_a_ramp_exactly():
  ramp = jnp.broadcast_to(jnp.arange(8, dtype=jnp.float32)[None, None, :, None], (1, 8, 8, 1))  # value = column
  points = jnp.array([[[0.5, 0.5], [0.25, 0.9], [0.0, 0.1]]])  # x, y fractions
  values = sample_at(ramp, points)[0, :, 0]
  np.testing.assert_allclose(values, [3.5, 1.5, 0.0], atol=1e-5)  # x * 8 - 0.5, clipped at the edge
  offsets = jnp.array([[-1.0, 0.0], [1.0, 0.0]])
  np.testing.assert_allclose(sample_at(ramp, points[:, :1], offsets)[0, 0], [2.5, 4.5], atol=1e-5)


def landmark_batch(points="facemesh", batch_size=2, seed=0):
  rng = np.random.default_rng(seed)
  shape = landmarks.mean_shape(points)
  return {
    "image": rng.random((batch_size, 48, 48, 1), np.float32),
    "landmarks": (shape[None] + rng.normal(0, 0.01, (batch_size,) + shape.shape)).astype(np.float32),
    "landmarks_found": np.array([1.0, 0.0][:batch_size], np.float32),
  }


@pytest.mark.slow
def test_landmark_gat_has_no_point_identity():
  """Renumbering the points (and the edges with them) leaves the prediction unchanged."""
  edges = landmarks.graph_edges("ibug68")
  model = get_model(
    ml_collections.ConfigDict(dict(name="face.landmark_gat", features=16, num_layers=2)),
    7,
    landmark_edges=tuple(map(tuple, edges.tolist())),
  )
  batch = landmark_batch("ibug68")
  variables = model.init(jax.random.key(0), batch)
  out = model.apply(variables, batch)
  assert out["logits"].shape == (2, 7) and np.isfinite(out["logits"]).all()
  np.testing.assert_allclose(out["node_attention"].sum(-1), 1.0, rtol=1e-5)
  order = np.random.default_rng(1).permutation(68)
  renumber = np.argsort(order)  # old index -> new index
  permuted = get_model(
    ml_collections.ConfigDict(dict(name="face.landmark_gat", features=16, num_layers=2)),
    7,
    landmark_edges=tuple(map(tuple, renumber[edges].tolist())),
  )
  permuted_out = permuted.apply(variables, {**batch, "landmarks": batch["landmarks"][:, order]})
  np.testing.assert_allclose(permuted_out["logits"], out["logits"], rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="landmark_cache"):
    get_model(ml_collections.ConfigDict(dict(name="face.landmark_gat")), 7).init(jax.random.key(0), batch)


@pytest.mark.slow
def test_cnn_with_the_full_mesh_graph():
  edges = tuple(map(tuple, landmarks.graph_edges("facemesh").tolist()))
  model = get_model(
    ml_collections.ConfigDict(
      dict(name="face.deep_cnn", width=0.125, landmark_graph=True, landmark_features=16, landmark_layers=1)
    ),
    7,
    landmark_edges=edges,
  )
  batch = landmark_batch("facemesh")
  out = model.apply(model.init(jax.random.key(0), batch), batch)
  assert out["logits"].shape == (2, 7) and np.isfinite(out["logits"]).all() and out["embedding"].shape[-1] == 32 + 16


@pytest.mark.slow
def test_adaptive_weighting_over_cnn_swin_and_landmark_groups():
  edges = tuple(map(tuple, landmarks.graph_edges("ibug68").tolist()))
  config = ml_collections.ConfigDict(
    dict(
      name="face.residual_attention_cnn",
      width=0.125,
      swin=True,
      swin_features=24,
      swin_heads=(2, 4),
      landmark_graph=True,
      landmark_features=16,
      adaptive_weighting=True,
      adaptive_features=32,
    )
  )
  model = get_model(config, 7, landmark_edges=edges)
  batch = landmark_batch("ibug68")
  variables = model.init(jax.random.key(0), batch)
  out = model.apply(variables, batch)
  weights = np.stack([out[f"group_weight_{g}"] for g in ("cnn", "swin", "landmarks")], -1)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  assert out["embedding"].shape == (2, 32) and {"landmark_graph", "swin_refinement"} <= set(variables["params"])
  fused, group_weights = AdaptiveFeatureWeighting(8).apply(
    AdaptiveFeatureWeighting(8).init(jax.random.key(0), {"a": jnp.ones((3, 4)), "b": jnp.zeros((3, 5))}),
    {"a": jnp.ones((3, 4)), "b": jnp.zeros((3, 5))},
  )
  assert fused.shape == (3, 8) and set(group_weights) == {"a", "b"}
  config.landmark_graph = True
  with pytest.raises(ValueError, match="landmark_cache"):
    get_model(config, 7).init(jax.random.key(0), {"image": batch["image"]})


def test_group_weights_reach_the_evaluation_report():
  dataset = fer2013.Dataset({"label": np.array([0, 1, 1])}, class_names=("a", "b"))
  outputs = {
    "logits": np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]),
    "group_weight_cnn": np.array([0.2, 0.6, 0.8]),
    "group_weight_landmarks": np.array([0.8, 0.4, 0.2]),
  }
  report = metrics.evaluate_outputs(outputs, dataset)
  assert report["all"]["group_weights"] == pytest.approx({"cnn": 0.5333, "landmarks": 0.4667}, abs=1e-3)
  assert report["all"]["group_weights_per_class"]["b"] == pytest.approx({"cnn": 0.7, "landmarks": 0.3})


@pytest.mark.slow
def test_landmark_model_trains_on_fer2013_and_reports_faces_found_apart(fer2013_root, tmp_path):
  for split in ("train", "validation"):
    write_cache(tmp_path / "cache", split, fer2013.load(fer2013_root, split, mark_train_duplicates=False).arrays["id"])
  config = tiny_config(
    "model=landmark_gat,data=fer2013",
    **{
      "data.root": str(fer2013_root),
      "data.landmark_cache": str(tmp_path / "cache"),
      "data.landmark_points": "ibug68",
      "model.features": 16,
      "model.num_layers": 1,
      "train.num_steps": 2,
      "train.num_epochs": 0.0,
      "eval.batch_size": 512,
    },
  )
  del config.model.width
  report = train.train_and_evaluate(config, tmp_path / "run")
  assert {"face_found", "no_face_found"} <= set(report)
  assert report["face_found"]["num_examples"] + report["no_face_found"]["num_examples"] == 3589
