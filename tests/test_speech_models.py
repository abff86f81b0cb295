from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import traverse_util

from emojax import losses, train
from emojax.metric_writer import read_metrics
from emojax.models import get_model
from emojax.models.layers import relative_shift
from tests.conftest import speech_config

FIXTURES = Path(__file__).parent / "fixtures"


def _feature_batch(n=3, frames=120, dim=64, seed=0):
  rng = np.random.default_rng(seed)
  num_frames = np.array([120, 77, 53][:n], np.int32)
  features = rng.normal(-6, 2, (n, frames, dim)).astype(np.float32)
  for row, count in enumerate(num_frames):
    features[row, count:] = 0
  return {
    "features": jnp.asarray(features),
    "num_frames": jnp.asarray(num_frames),
    "label": jnp.asarray(rng.integers(0, 8, n), jnp.int32),
  }


MODELS = [
  dict(name="speech.cnn_lstm", conv_features=(8, 16), lstm_features=16),
  dict(name="speech.conformer", model_dim=32, num_layers=2, num_heads=4, subsampling_features=8),
]


@pytest.mark.slow
@pytest.mark.parametrize("fields", MODELS, ids=lambda f: f["name"])
def test_speech_models_ignore_padding_and_train_batch_stats(fields):
  model = get_model(ml_collections.ConfigDict(fields), num_classes=8)
  batch = _feature_batch()
  variables = model.init({"params": jax.random.key(0)}, batch)
  out = model.apply(variables, batch)
  assert out["logits"].shape == (3, 8) and out["embedding"].ndim == 2
  assert out["frame_attention"].shape[0] == 3 and np.allclose(out["frame_attention"].sum(-1), 1, atol=1e-5)
  # Whatever sits in the padding does not change any prediction.
  noisy = dict(batch, features=batch["features"].at[1, 77:].set(50.0).at[2, 53:].set(-50.0))
  np.testing.assert_allclose(model.apply(variables, noisy)["logits"], out["logits"], atol=1e-5)
  _, updates = model.apply(variables, batch, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])
  assert jax.tree.leaves(updates["batch_stats"])


def test_relative_shift_places_each_distance():
  scores = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 6, 11)), jnp.float32)
  index = 5 - np.arange(6)[:, None] + np.arange(6)[None, :]  # column of distance i - j
  expected = np.take_along_axis(np.asarray(scores), np.broadcast_to(index, (2, 3, 6, 6)), axis=-1)
  np.testing.assert_array_equal(relative_shift(scores), expected)


@pytest.mark.slow
def test_conformer_attention_sees_relative_not_absolute_positions():
  """Moving a sequence to later frames (masked junk before and after) leaves its outputs unchanged."""
  from emojax.models.layers import RelativePositionSelfAttention

  layer = RelativePositionSelfAttention(num_heads=2, dropout=0.0)
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(1, 8, 8)), jnp.float32)
  params = layer.init(jax.random.key(0), x, jnp.ones((1, 8), bool), False)
  alone = layer.apply(params, x, jnp.ones((1, 8), bool), False)
  moved = jnp.concatenate(
    [jnp.asarray(rng.normal(size=(1, 3, 8)), jnp.float32), x, jnp.asarray(rng.normal(size=(1, 2, 8)), jnp.float32)],
    axis=1,
  )
  mask = jnp.zeros((1, 13), bool).at[:, 3:11].set(True)
  np.testing.assert_allclose(layer.apply(params, moved, mask, False)[:, 3:11], alone, atol=1e-5)
  # The position term is live: reversing the sequence does not just reverse the outputs.
  reversed_out = layer.apply(params, x[:, ::-1], jnp.ones((1, 8), bool), False)
  assert not np.allclose(reversed_out[:, ::-1], alone, atol=1e-3)


# --- wav2vec 2.0 models on the tiny Hugging Face fixture ----------------------------------------
def _audio_batch():
  rng = np.random.default_rng(0)
  return {
    "audio": jnp.asarray(rng.normal(0, 0.1, (2, 8000)), jnp.float32),
    "length": jnp.asarray([8000, 5000], jnp.int32),
    "label": jnp.asarray([1, 3], jnp.int32),
  }


@pytest.mark.parametrize(
  "fields",
  [
    dict(name="speech.wav2vec2", num_frozen_layers=1, head_features=16),
    dict(name="speech.conformer", frontend="wav2vec2", model_dim=16, num_layers=1, num_heads=2),
  ],
  ids=["wav2vec2_classifier", "conformer_over_wav2vec2"],
)
@pytest.mark.slow
def test_wav2vec2_models_load_weights_and_keep_frozen_parts_fixed(fields):
  path = str(FIXTURES / "wav2vec2_tiny_group")
  model = get_model(ml_collections.ConfigDict(dict(fields, wav2vec2_path=path)), num_classes=4)
  batch = _audio_batch()
  variables = model.init({"params": jax.random.key(0)}, batch)
  params = model.load_pretrained(variables["params"])
  from emojax.models.wav2vec2 import load_wav2vec2

  _, pretrained = load_wav2vec2(path)
  np.testing.assert_array_equal(
    params["wav2vec2_features"]["encoder"]["position_conv"]["kernel"], pretrained["position_conv"]["kernel"]
  )
  config = ml_collections.ConfigDict(
    dict(
      optimizer=dict(
        name="adamw",
        learning_rate=1e-2,
        b1=0.9,
        b2=0.98,
        weight_decay=0.1,
        warmup_epochs=0.0,
        final_lr_fraction=1.0,
        grad_clip_norm=1.0,
      )
    )
  )
  tx, _ = train.make_optimizer(config, total_steps=10, steps_per_epoch=10, is_frozen=model.frozen_parameters)
  state = tx.init(params)
  for step in range(2):

    def loss_fn(p):
      out, _ = model.apply(
        {**variables, "params": p}, batch, train=True, rngs={"dropout": jax.random.key(step)}, mutable=["batch_stats"]
      )
      return losses.classification_loss(out, batch)[0]

    updates, state = tx.update(jax.grad(loss_fn)(params), state, params)
    new = optax.apply_updates(params, updates)
  before, after = traverse_util.flatten_dict(params, sep="/"), traverse_util.flatten_dict(new, sep="/")
  frozen = [k for k in before if model.frozen_parameters(k)]
  trained = [k for k in before if not model.frozen_parameters(k)]
  assert frozen and trained
  assert all(np.array_equal(before[k], after[k]) for k in frozen)  # weight decay included
  assert any(not np.array_equal(before[k], after[k]) for k in trained)
  if fields["name"] == "speech.wav2vec2":  # layer 0 frozen, layer 1 trained
    assert model.frozen_parameters("wav2vec2_features/encoder/layers_0/attention/query/kernel")
    assert not model.frozen_parameters("wav2vec2_features/encoder/layers_1/attention/query/kernel")


def test_a_missing_wav2vec2_folder_is_a_clear_error(tmp_path):
  model = get_model(ml_collections.ConfigDict(dict(name="speech.wav2vec2", wav2vec2_path=str(tmp_path / "w2v"))), 4)
  with pytest.raises(FileNotFoundError, match="w2v"):
    model.init({"params": jax.random.key(0)}, _audio_batch())


# --- training through the one trainer on real RAVDESS ------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn_lstm", "conformer"])
def test_short_training_run_on_real_ravdess_lowers_the_loss(small_ravdess, tmp_path, model):
  config = speech_config(
    small_ravdess,
    tmp_path / "cache",
    f"model={model},labels=ekman7",
    **{
      "train.num_steps": 36,
      "train.label_smoothing": 0.0,
      "optimizer.learning_rate": 3e-3,
      "optimizer.warmup_epochs": 0.5,
      "data.augment.enabled": False,
      "model.dropout": 0.0,
    },
  )
  if model == "conformer":
    config.model.model_dim, config.model.num_layers = 32, 2
  report = train.train_and_evaluate(config, tmp_path / "run")
  losses_seen = [r["loss"] for r in read_metrics(tmp_path / "run") if r["split"] == "train"]
  assert losses_seen[-1] < 0.7 * losses_seen[0], losses_seen
  assert report["all"]["num_examples"] == 15 and 0 <= report["all"]["balanced_accuracy"] <= 1
  assert (tmp_path / "run" / "eval" / "confusion_matrix.png").is_file()
