"""Data-parallel, FSDP and tensor-parallel steps on 8 simulated CPU devices equal the single-device step, and
gradient accumulation equals one big batch."""

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest

from emojax import sharding, train
from emojax.data import pipeline, synthetic
from emojax.models import get_model
from tests.conftest import tiny_config


class MLP(nn.Module):
  """No batch norm, no dropout: an accumulated step must equal the one-batch step exactly."""

  @nn.compact
  def __call__(self, batch, train=False):
    x = batch["image"].reshape(batch["image"].shape[0], -1)
    return {"logits": nn.Dense(7)(nn.relu(nn.Dense(64)(x)))}


def _run_steps(mesh_config, strategy, devices, num_steps=2, model=None, **overrides):
  # SGD, not Adam: Adam divides by sqrt(v), which turns float-order noise in near-zero gradients
  # into lr-sized differences and would force a tolerance too loose to catch real bugs.
  config = tiny_config(
    **{
      "sharding.strategy": strategy,
      "sharding.fsdp_min_size": 0,
      "optimizer.name": "sgd",
      "optimizer.learning_rate": 0.05,
      **overrides,
    }
  )
  config.mesh = ml_collections.ConfigDict(mesh_config)
  mesh = sharding.create_mesh(config.mesh, devices)
  model = model or get_model(config.model, 7)
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


@pytest.mark.parametrize(
  "mesh_config,strategy",
  [
    ({"data": 8}, "replicate"),
    ({"fsdp": 8}, "fsdp"),
    ({"data": 2, "fsdp": 4}, "fsdp"),
    ({"data": 4, "model": 2}, "replicate"),
    ({"data": 2, "fsdp": 2, "model": 2}, "fsdp"),
  ],
)
@pytest.mark.slow
def test_sharded_step_matches_single_device(single_device, mesh_config, strategy):
  want_losses, want_state, _ = single_device
  losses, got_state, live_state = _run_steps(mesh_config, strategy, jax.devices())
  np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
  # Parameters, batch-norm statistics and optimizer state all agree after two updates (Eigen's convolutions sum
  # in another order per shard: differences reach 2e-6 on values of 1e-3; a wrong gradient is off by 1e-1).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), got_state, want_state)
  axes = {axis for leaf in jax.tree.leaves(live_state["params"]) for axis in leaf.sharding.spec if axis}
  assert axes == {axis for axis in ("fsdp", "model") if mesh_config.get(axis, 1) > 1}


@pytest.mark.parametrize("accum", [2, 4])
def test_gradient_accumulation_equals_one_big_batch(accum):
  want_losses, want_state, _ = _run_steps({"data": 8}, "replicate", jax.devices(), model=MLP())
  losses, got_state, _ = _run_steps(
    {"data": 8}, "replicate", jax.devices(), model=MLP(), **{"train.grad_accum_steps": accum}
  )
  np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got_state, want_state)


@pytest.mark.slow
def test_gradient_accumulation_with_batch_norm_and_dropout_stays_close():
  """Per-microbatch statistics and masks change the numbers a little, not the training."""
  want_losses, _, _ = _run_steps({"data": 8}, "replicate", jax.devices(), num_steps=3)
  losses, _, _ = _run_steps({"data": 8}, "replicate", jax.devices(), num_steps=3, **{"train.grad_accum_steps": 2})
  np.testing.assert_allclose(losses, want_losses, rtol=0.05)


def test_explicit_rules_take_precedence():
  config = tiny_config(**{"sharding.strategy": "fsdp", "sharding.fsdp_min_size": 0})
  config.sharding.rules = [("classifier/kernel", (None, None))]
  mesh = sharding.create_mesh(ml_collections.ConfigDict({"fsdp": 8}))
  tree = {"params": {"classifier": {"kernel": np.zeros((64, 8))}, "Dense_0": {"kernel": np.zeros((64, 8))}}}
  specs = sharding.tree_shardings(tree, mesh, config.sharding)
  assert specs["params"]["classifier"]["kernel"].spec == jax.sharding.PartitionSpec(None, None)
  assert "fsdp" in specs["params"]["Dense_0"]["kernel"].spec


def test_bad_accumulation_is_a_clear_error(tmp_path):
  with pytest.raises(
    ValueError,
    match=r"batch_size=32 must be divisible by the data x fsdp mesh size \(8\) times "
    r"config.train.grad_accum_steps \(8\)",
  ):
    train.train_and_evaluate(tiny_config(**{"train.grad_accum_steps": 8}), tmp_path)
  with pytest.raises(ValueError, match="grad_accum_steps=0 must be >= 1"):
    train.train_and_evaluate(tiny_config(**{"train.grad_accum_steps": 0}), tmp_path)


def test_bad_mesh_is_a_clear_error():
  with pytest.raises(ValueError, match="needs 3 devices; 8 are present"):
    sharding.create_mesh(ml_collections.ConfigDict({"data": 3}))
  with pytest.raises(ValueError, match="unknown axes"):
    sharding.create_mesh(ml_collections.ConfigDict({"batch": -1}))
