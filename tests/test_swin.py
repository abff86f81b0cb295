"""Swin blocks: window partition / merge, the shifted-window mask, attention weights, and the face-model switch."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from emojax.models import get_model, swin


def test_window_partition_and_reverse_round_trip():
  x = np.arange(2 * 12 * 12 * 3, dtype=np.float32).reshape(2, 12, 12, 3)
  windows = swin.window_partition(jnp.asarray(x), 6)
  assert windows.shape == (8, 36, 3)
  np.testing.assert_array_equal(windows[1].reshape(6, 6, 3), x[0, :6, 6:])  # row-major: top-right window second
  np.testing.assert_array_equal(swin.window_reverse(windows, 6, 12, 12), x)


def test_shift_mask_keeps_rolled_regions_apart():
  mask = swin.shift_attention_mask(12, 12, 6, 3)
  assert mask.shape == (4, 36, 36)
  assert not mask[0].any()  # the top-left window holds one region: no masking
  np.testing.assert_array_equal(mask, mask.transpose(0, 2, 1))
  # After the roll by -3, the bottom-right window mixes four regions: rows 0-2 / 3-5 and columns 0-2 / 3-5.
  region = lambda i: (i // 6 >= 3) * 2 + (i % 6 >= 3)
  expected = np.array([[region(i) != region(j) for j in range(36)] for i in range(36)])
  np.testing.assert_array_equal(mask[3] < 0, expected)


def test_relative_position_index_is_translation_invariant():
  index = swin.relative_position_index(3)
  assert index.shape == (9, 9) and index.min() == 0 and index.max() == 24
  # Token 0 (0,0) -> token 4 (1,1) is the same offset as token 4 -> token 8 (2,2).
  assert index[0, 4] == index[4, 8] and index[4, 0] == index[8, 4] and index[0, 0] == 12


def test_attention_weights_sum_to_one_and_masked_pairs_get_none():
  attention = swin.WindowAttention(num_heads=2, window=6)
  x = jax.random.normal(jax.random.key(0), (8, 36, 16))
  mask = jnp.asarray(np.tile(swin.shift_attention_mask(12, 12, 6, 3), (2, 1, 1))[:4])
  params = attention.init(jax.random.key(1), x, mask)
  _, weights = attention.apply(params, x, mask)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  blocked = np.broadcast_to(np.asarray(mask)[None, :, None] < 0, (2, 4, 2, 36, 36)).reshape(8, 2, 36, 36)
  assert float(np.asarray(weights)[blocked].max()) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["face.deep_cnn", "face.residual_attention_cnn"])
def test_the_swin_switch_adds_refined_features_to_the_face_models(name):
  batch = {"image": np.random.default_rng(0).random((2, 48, 48, 1), np.float32)}
  model = get_model(
    ml_collections.ConfigDict(dict(name=name, width=0.125, swin=True, swin_features=24, swin_heads=(2, 4))), 7
  )
  variables = model.init(jax.random.key(0), batch)
  assert "swin_refinement" in variables["params"]
  out = model.apply(variables, batch)
  plain = get_model(ml_collections.ConfigDict(dict(name=name, width=0.125)), 7)
  plain_out = plain.apply(plain.init(jax.random.key(0), batch), batch)
  assert out["logits"].shape == (2, 7) and np.isfinite(out["logits"]).all()
  if name == "face.residual_attention_cnn":  # pooled Swin features (2 x 24 after merging) join the embedding
    assert out["embedding"].shape[-1] == plain_out["embedding"].shape[-1] + 48
  bad = get_model(ml_collections.ConfigDict(dict(name=name, width=0.125, swin=True, swin_window=5)), 7)
  with pytest.raises(ValueError, match="5x5 windows"):
    bad.init(jax.random.key(0), batch)
