"""Data-parallel and FSDP steps on 8 simulated CPU devices equal the single-device step."""

import jax
import ml_collections
import numpy as np
import pytest

from emojax import sharding, train
from emojax.data import pipeline, synthetic
from emojax.models import get_model
from tests.conftest import tiny_config


def _run_steps(mesh_config, strategy, devices, num_steps=2):
  # SGD, not Adam: Adam divides by sqrt(v), which turns float-order noise in near-zero gradients
  # into lr-sized differences and would force a tolerance too loose to catch real bugs.
  config = tiny_config(**{"sharding.strategy": strategy, "sharding.fsdp_min_size": 0,
                          "optimizer.name": "sgd", "optimizer.learning_rate": 0.05})
  config.mesh = ml_collections.ConfigDict(mesh_config)
  mesh = sharding.create_mesh(config.mesh, devices)
  model = get_model(config.model, 7)
  tx, _ = train.make_optimizer(config, total_steps=10, steps_per_epoch=5)
  data = synthetic.load("train", 32)
  batch = {k: np.stack([pipeline.decode(data[i])[k] for i in range(32)]) for k in ("image", "label")}
  state, _, shardings = train.sharded_init(model, tx, {k: v[:1] for k, v in batch.items()}, 0, mesh, config.sharding)
  step = train.make_train_step(model, tx, config, shardings, mesh)
  losses = []
  for _ in range(num_steps):
    state, metrics = step(state, sharding.global_batch(batch, mesh))
    losses.append(float(metrics["loss"]))
  return losses, jax.device_get(state), state


@pytest.fixture(scope="module")
def single_device():
  return _run_steps({"data": 1}, "replicate", jax.devices()[:1])


def test_eight_devices_are_simulated():
  assert jax.device_count() == 8


@pytest.mark.parametrize("mesh_config,strategy", [({"data": 8}, "replicate"), ({"fsdp": 8}, "fsdp"),
                                                  ({"data": 2, "fsdp": 4}, "fsdp")])
def test_sharded_step_matches_single_device(single_device, mesh_config, strategy):
  want_losses, want_state, _ = single_device
  losses, got_state, live_state = _run_steps(mesh_config, strategy, jax.devices())
  np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
  # Parameters, batch-norm statistics and Adam moments all agree after two updates.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got_state, want_state)
  specs = [leaf.sharding.spec for leaf in jax.tree.leaves(live_state["params"])]
  if strategy == "fsdp":
    assert any("fsdp" in spec for spec in specs), "FSDP should shard at least one parameter"
  else:
    assert all(spec == jax.sharding.PartitionSpec() for spec in specs)


def test_explicit_rules_take_precedence():
  config = tiny_config(**{"sharding.strategy": "fsdp", "sharding.fsdp_min_size": 0})
  config.sharding.rules = [("classifier/kernel", (None, None))]
  mesh = sharding.create_mesh(ml_collections.ConfigDict({"fsdp": 8}))
  tree = {"params": {"classifier": {"kernel": np.zeros((64, 8))}, "Dense_0": {"kernel": np.zeros((64, 8))}}}
  specs = sharding.tree_shardings(tree, mesh, config.sharding)
  assert specs["params"]["classifier"]["kernel"].spec == jax.sharding.PartitionSpec(None, None)
  assert "fsdp" in specs["params"]["Dense_0"]["kernel"].spec


def test_bad_mesh_is_a_clear_error():
  with pytest.raises(ValueError, match="needs 3 devices; 8 are present"):
    sharding.create_mesh(ml_collections.ConfigDict({"data": 3}))
  with pytest.raises(ValueError, match="unknown axes"):
    sharding.create_mesh(ml_collections.ConfigDict({"batch": -1}))
