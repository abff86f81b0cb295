"""The Flax wav2vec 2.0 against transformers' own outputs, saved by tests/fixtures/make_wav2vec2_fixture.py."""

import pickle
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from emojax.models.convert import load_hf_state_dict
from emojax.models.wav2vec2 import Wav2Vec2Encoder, load_wav2vec2, wav2vec2_params_from_hf

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOLERANCE = 1e-4


@pytest.mark.parametrize("name", ["wav2vec2_tiny_group", "wav2vec2_tiny_stable"])
def test_matches_hugging_face_hidden_states(name):
  config, params = load_wav2vec2(FIXTURES / name)
  reference = np.load(FIXTURES / name / "reference.npz")
  # The stable fixture was run with an attention mask, the group one without (as HF advises for group norm).
  lengths = reference["lengths"] if reference["used_attention_mask"] else None
  outputs = jax.jit(Wav2Vec2Encoder(config).apply)({"params": params}, reference["audio"], lengths)

  assert len(outputs["hidden_states"]) == config.num_hidden_layers + 1
  for index, state in enumerate(outputs["hidden_states"]):
    np.testing.assert_allclose(
      state, reference[f"hidden_state_{index}"], atol=TOLERANCE, rtol=0, err_msg=f"hidden_states[{index}]"
    )
  np.testing.assert_allclose(outputs["last_hidden_state"], reference["last_hidden_state"], atol=TOLERANCE, rtol=0)
  np.testing.assert_allclose(outputs["extract_features"], reference["extract_features"], atol=TOLERANCE, rtol=0)
  # 8000 samples -> 177 frames; the padded row's 5000 samples -> 111 (HF's conv output-length formula).
  expected_frames = [177, 111] if lengths is not None else [177, 177]
  np.testing.assert_array_equal(outputs["frame_mask"].sum(axis=1), expected_frames)


def test_checkpoint_layouts_give_the_same_params():
  config, params = load_wav2vec2(FIXTURES / "wav2vec2_tiny_stable")
  _, params_from_pickle = load_wav2vec2(FIXTURES / "wav2vec2_tiny_stable_bin")
  jax.tree.map(np.testing.assert_array_equal, params, params_from_pickle)

  # Old torch's weight-norm names, and a fine-tuned classifier's `wav2vec2.` prefix with its head beside it.
  renames = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
  state_dict = {}
  for name, value in load_hf_state_dict(FIXTURES / "wav2vec2_tiny_stable").items():
    for new, old in renames.items():
      name = name.replace(new, old)
    state_dict["wav2vec2." + name] = value
  state_dict["classifier.weight"] = np.zeros((7, 32), np.float32)
  jax.tree.map(np.testing.assert_array_equal, params, wav2vec2_params_from_hf(state_dict, config))


def test_missing_folder_or_weights_say_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match="no_such_model.*hf download"):
    load_wav2vec2(tmp_path / "no_such_model")
  (tmp_path / "config.json").write_text("{}")
  with pytest.raises(FileNotFoundError, match="model.safetensors"):
    load_wav2vec2(tmp_path)


def test_missing_tensor_is_named():
  config, _ = load_wav2vec2(FIXTURES / "wav2vec2_tiny_group")
  state_dict = load_hf_state_dict(FIXTURES / "wav2vec2_tiny_group")
  del state_dict["encoder.layers.1.attention.k_proj.weight"]
  with pytest.raises(ValueError, match=r"encoder\.layers\.1\.attention\.k_proj\.weight"):
    wav2vec2_params_from_hf(state_dict, config)


def test_pickle_that_runs_code_is_refused(tmp_path):
  class Payload:
    def __reduce__(self):
      return (print, ("this must never run",))

  with zipfile.ZipFile(tmp_path / "pytorch_model.bin", "w") as archive:
    archive.writestr("archive/data.pkl", pickle.dumps({"weight": Payload()}, protocol=2))
  with pytest.raises(pickle.UnpicklingError, match="refusing"):
    load_hf_state_dict(tmp_path)


@pytest.mark.parametrize(
  "freeze_feature_encoder, num_frozen_layers, frozen",
  [
    (True, 0, {"feature_encoder"}),
    (True, 1, {"feature_encoder", "feature_layer_norm", "feature_projection", "position_conv", "layers_0"}),
  ],
)
def test_frozen_parts_get_exactly_zero_gradients(freeze_feature_encoder, num_frozen_layers, frozen):
  config, params = load_wav2vec2(FIXTURES / "wav2vec2_tiny_stable")
  model = Wav2Vec2Encoder(config, freeze_feature_encoder=freeze_feature_encoder, num_frozen_layers=num_frozen_layers)
  audio = np.load(FIXTURES / "wav2vec2_tiny_stable" / "reference.npz")["audio"][:, :2000]

  def loss(params):
    # Every output, so a leak through hidden_states or extract_features would show up as a gradient.
    outputs = model.apply({"params": params}, audio, jnp.array([2000, 1500]))
    used = (*outputs["hidden_states"], outputs["last_hidden_state"], outputs["extract_features"])
    return sum(jnp.mean(output**2) for output in used)

  gradients = traverse_util.flatten_dict(jax.jit(jax.grad(loss))(params), sep="/")
  for name, gradient in gradients.items():
    if name.split("/")[0] in frozen:
      assert not np.any(gradient), f"{name} is frozen but has a gradient"
    elif not name.endswith("attention/key/bias"):  # Softmax ignores a key bias: its gradient is ~0 by design.
      assert np.any(gradient), f"{name} is trainable but has no gradient"
