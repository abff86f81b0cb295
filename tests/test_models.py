import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from emojax import losses
from emojax.models import get_model


def _batch(n=4):
  rng = np.random.default_rng(0)
  return {
    "image": jnp.asarray(rng.random((n, 48, 48, 1)), jnp.float32),
    "label": jnp.asarray(rng.integers(0, 7, n), jnp.int32),
  }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["face.deep_cnn", "face.residual_attention_cnn", "face.cnn_bilstm"])
def test_models_are_pure_functions_with_named_outputs(name):
  model = get_model(ml_collections.ConfigDict(dict(name=name, width=0.125)), num_classes=7)
  batch = _batch()
  variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, batch, train=False)
  out = model.apply(variables, batch, train=False)
  assert out["logits"].shape == (4, 7) and out["embedding"].ndim == 2
  np.testing.assert_array_equal(out["logits"], model.apply(variables, batch, train=False)["logits"])
  # Training mode updates batch statistics and is stochastic through dropout only.
  train_out, updates = model.apply(
    variables, batch, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"]
  )
  assert jax.tree.leaves(updates["batch_stats"])
  assert not np.allclose(train_out["logits"], out["logits"])


@pytest.mark.slow
def test_residual_attention_exposes_confidence_and_attention():
  model = get_model(ml_collections.ConfigDict(dict(name="face.residual_attention_cnn", width=0.125)), 7)
  batch = _batch()
  variables = model.init({"params": jax.random.key(0)}, batch)
  out = model.apply(variables, batch)
  assert out["confidence"].shape == (4,) and (out["confidence"] > 0).all() and (out["confidence"] < 1).all()
  assert out["spatial_attention"].shape[0] == 4 and (out["spatial_attention"] >= 0).all()


@pytest.mark.slow
def test_deep_cnn_matches_the_published_layout():
  model = get_model(ml_collections.ConfigDict(dict(name="face.deep_cnn")), 7)
  params = model.init({"params": jax.random.key(0)}, _batch(1))["params"]
  blocks = sorted((int(k.split("_")[-1]), v) for k, v in params.items() if k.startswith("ConvBatchNormReLU"))
  convs = [v["Conv_0"]["kernel"].shape[-1] for _, v in blocks]
  assert convs == [64, 64, 128, 128, 256, 256, 512, 512]
  assert params["classifier"]["kernel"].shape == (256, 7)


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = get_model(ml_collections.ConfigDict(dict(name="face.deep_cnn", width=0.125, dtype="bfloat16")), 7)
  variables = model.init({"params": jax.random.key(0)}, _batch())
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
  out = model.apply(variables, _batch())
  assert out["logits"].dtype == jnp.float32 and np.isfinite(out["logits"]).all()


def test_unknown_model_or_field_is_a_clear_error():
  with pytest.raises(ValueError, match="not a registered model.*face.deep_cnn"):
    get_model(ml_collections.ConfigDict(dict(name="face.vgg")), 7)
  with pytest.raises(ValueError, match="does not take"):
    get_model(ml_collections.ConfigDict(dict(name="face.deep_cnn", depth=3)), 7)


def test_confidence_loss_pays_for_hints():
  logits = jnp.array([[4.0, 0.0], [0.0, 4.0]])
  batch = {"label": jnp.array([0, 0])}
  # A confident wrong prediction (second row) costs more than hedging with low confidence on it.
  confident = losses.classification_loss({"logits": logits, "confidence": jnp.array([0.99, 0.99])}, batch)[0]
  hedged = losses.classification_loss({"logits": logits, "confidence": jnp.array([0.99, 0.2])}, batch)[0]
  assert hedged < confident
  plain, metrics = losses.classification_loss({"logits": logits}, batch)
  assert metrics["accuracy"] == 0.5 and plain > 0


def test_confidence_term_cannot_move_the_classifier():
  """The collapse seen on FER2013: hints must not reach the logits."""
  batch = {"label": jnp.array([0, 1])}
  logits = jnp.array([[1.0, 0.5], [2.0, 0.0]])
  loss = lambda lg, c: losses.classification_loss({"logits": lg, "confidence": c}, batch)[0]
  plain = lambda lg: losses.classification_loss({"logits": lg}, batch)[0]
  np.testing.assert_allclose(jax.grad(loss)(logits, jnp.array([0.3, 0.9])), jax.grad(plain)(logits), rtol=1e-6)
  # At its optimum the confidence rises with the probability of the true class.
  grid = jnp.linspace(0.01, 0.99, 99)
  one = {"label": jnp.array([0])}
  loss_one = lambda z, c: losses.classification_loss({"logits": jnp.array([[z, 0.0]]), "confidence": c[None]}, one)[0]
  best = [grid[jnp.argmin(jax.vmap(lambda c: loss_one(z, c))(grid))] for z in (-1.0, 0.0, 1.0)]
  assert best[0] <= best[1] <= best[2] and best[0] < best[2]


def test_max_pool_2x2_equals_flax_max_pool():
  from emojax.models.layers import max_pool_2x2

  rng = np.random.default_rng(0)
  for shape in [(2, 6, 6, 3), (2, 7, 5, 3), (1, 3, 3, 1)]:  # odd sizes drop the last row/column, like VALID
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))


def test_configure_xla_cpu_adds_the_flag_once_and_respects_an_explicit_one(monkeypatch):
  from emojax import sharding

  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
  sharding.configure_xla_cpu(ynnpack=False)
  sharding.configure_xla_cpu(ynnpack=False)
  assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 --xla_cpu_experimental_ynn_fusion_type="
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT")
  sharding.configure_xla_cpu(ynnpack=False)
  assert os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"
  monkeypatch.setenv("XLA_FLAGS", "")
  sharding.configure_xla_cpu(ynnpack=True)
  assert os.environ["XLA_FLAGS"] == ""
