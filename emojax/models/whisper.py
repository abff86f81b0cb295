"""Whisper's audio encoder (Radford et al. 2022) as a Flax linen module that runs CTranslate2 checkpoints.

The module reproduces the encoder of OpenAI's Whisper operation for operation: two GELU convolutions over the
80-bin log-mel (the second with stride 2, so one frame per 20 ms), fixed sinusoidal positions added, pre-LN
transformer layers (layer norm, multi-head self-attention, residual; layer norm, 4x GELU MLP, residual) and a
final layer norm. `load_whisper_encoder` reads the weights straight from a CTranslate2 `model.bin` (the format
faster-whisper runs; `models/convert.read_ctranslate2_model`), so neither torch nor ctranslate2 is needed to
load it; tests/test_whisper.py checks the hidden states against CTranslate2's own `encode()` on stored features.

Whisper was trained on 30 s windows (3000 mel frames -> 1500 positions) and has no attention mask. Two ways in:
pad the log-mel to 3000 frames as Whisper does (`data/whisper_features.py`, `pad_to_seconds=30`), or give a
shorter window, whose positional table is cut to its length (`num_frames` then hides a batch's padded frames
from attention as keys). The shorter window costs ~10x less for a 3 s clip; docs/whisper.md compares the two.

Parameter names, CTranslate2 -> here: `encoder/conv{1,2}` -> `conv_{1,2}`, `encoder/position_encodings/encodings`
-> `positions` (Whisper's fixed sinusoids, as the checkpoint stores them),
`encoder/layer_{i}/self_attention/{layer_norm,linear_0 (fused q|k|v),linear_1}` ->
`layers_{i}/{attention_layer_norm,attention/{query,key,value},attention/output}`,
`.../ffn/{layer_norm,linear_0,linear_1}` -> `feed_forward_layer_norm`, `feed_forward_in`, `feed_forward_out`,
`encoder/layer_norm` -> `layer_norm`.
"""

import dataclasses
import functools
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from emojax.models import convert
from emojax.models.layers import two_pass_layer_norm
from emojax.models.wav2vec2 import SelfAttention

GELU = functools.partial(nn.gelu, approximate=False)  # Whisper's nn.GELU is the exact erf form
LAYER_NORM_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class WhisperEncoderConfig:
  """The encoder's architecture; defaults are Whisper base. `from_ctranslate2` reads it off the weights' shapes."""

  num_mel_bins: int = 80
  hidden_size: int = 512
  num_layers: int = 6
  num_heads: int = 8
  intermediate_size: int = 2048
  max_positions: int = 1500

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}.")

  @property
  def max_frames(self) -> int:
    """Mel frames of the 30 s window the positional table covers (two per position)."""
    return 2 * self.max_positions

  @classmethod
  def from_ctranslate2(cls, model: convert.CTranslate2Model) -> "WhisperEncoderConfig":
    if model.spec != "WhisperSpec":
      raise ValueError(f"The CTranslate2 model is a {model.spec!r}, not a 'WhisperSpec' (a faster-whisper folder).")
    layers = 0
    while f"encoder/layer_{layers}/ffn/linear_0/weight" in model:
      layers += 1
    width, mel_bins, _ = model["encoder/conv1/weight"].shape
    return cls(
      num_mel_bins=int(mel_bins),
      hidden_size=int(width),
      num_layers=layers,
      num_heads=int(model["encoder/num_heads"]),
      intermediate_size=int(model["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
      max_positions=int(model["encoder/position_encodings/encodings"].shape[0]),
    )


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
  """Whisper's positional table [length, channels]: sines then cosines of geometric timescales (whisper.model)."""
  increment = np.log(max_timescale) / (channels // 2 - 1)
  inverse = np.exp(-increment * np.arange(channels // 2))
  scaled = np.arange(length)[:, None] * inverse[None, :]
  return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1).astype(np.float32)


def output_frames(num_frames):
  """Positions the conv stem makes from `num_frames` mel frames: kernel 3, padding 1, stride 2 -> ceil(T / 2)."""
  return (num_frames + 1) // 2


class EncoderLayer(nn.Module):
  """One pre-LN Whisper layer; `key_mask` [B, T] (True = real frame) or None."""

  config: WhisperEncoderConfig
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, key_mask, train: bool = False):
    config = self.config
    dropout = lambda y: nn.Dropout(self.dropout)(y, deterministic=not train)
    attention_norm = two_pass_layer_norm(LAYER_NORM_EPSILON, self.dtype, "attention_layer_norm")
    x = x + dropout(
      SelfAttention(config.num_heads, self.dropout, self.dtype, name="attention")(attention_norm(x), key_mask, train)
    )
    y = two_pass_layer_norm(LAYER_NORM_EPSILON, self.dtype, "feed_forward_layer_norm")(x)
    y = GELU(nn.Dense(config.intermediate_size, dtype=self.dtype, name="feed_forward_in")(y))
    return x + dropout(nn.Dense(config.hidden_size, dtype=self.dtype, name="feed_forward_out")(y))


class WhisperEncoder(nn.Module):
  """Whisper's encoder from log-mel [B, T, num_mel_bins] (T <= 3000, Whisper-normalised) to hidden states.

  `__call__(features, num_frames=None, train=False)` returns a dict: hidden_states, a tuple of num_layers + 1
  arrays [B, ceil(T/2), H] (the conv stem + positions, then each layer's output; the last after the final
  layer norm, i.e. the encoder output Whisper's decoder reads); last_hidden_state (= hidden_states[-1]);
  frame_mask [B, ceil(T/2)] float, 1 where a position covers real frames. With `num_frames` [B], padded frames
  are zeroed before the conv stem and hidden from attention as keys. `num_frozen_layers` stops gradients at
  the stem and the first n layers (and their hidden states), as `Wav2Vec2Encoder` does.
  """

  config: WhisperEncoderConfig
  dropout: float = 0.0
  num_frozen_layers: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features, num_frames=None, train: bool = False):
    config = self.config
    if features.ndim != 3 or features.shape[-1] != config.num_mel_bins:
      raise ValueError(
        f"Whisper's encoder reads log-mel [batch, frames, {config.num_mel_bins}]; got shape {features.shape}."
      )
    if features.shape[1] > config.max_frames:
      raise ValueError(
        f"{features.shape[1]} mel frames exceed Whisper's {config.max_frames} (30 s); cut the audio "
        "into windows of at most 30 s."
      )
    if not 0 <= self.num_frozen_layers <= config.num_layers:
      raise ValueError(f"num_frozen_layers={self.num_frozen_layers} must be between 0 and {config.num_layers}.")
    freeze = lambda y, frozen: jax.lax.stop_gradient(y) if frozen else y
    x = features.astype(self.dtype)
    key_mask = None
    length = output_frames(x.shape[1])
    if num_frames is not None:
      x = jnp.where((jnp.arange(x.shape[1])[None, :] < jnp.asarray(num_frames)[:, None])[..., None], x, 0)
      key_mask = jnp.arange(length)[None, :] < output_frames(jnp.asarray(num_frames))[:, None]
    x = GELU(nn.Conv(config.hidden_size, (3,), padding=[(1, 1)], dtype=self.dtype, name="conv_1")(x))
    x = GELU(nn.Conv(config.hidden_size, (3,), (2,), padding=[(1, 1)], dtype=self.dtype, name="conv_2")(x))
    # Fixed in Whisper, but a parameter here so a checkpoint's own (float16-rounded) table is used as stored.
    table = self.param(
      "positions", lambda rng, shape: jnp.asarray(sinusoids(*shape)), (config.max_positions, config.hidden_size)
    )
    x = x + table[:length].astype(self.dtype)
    x = freeze(x, self.num_frozen_layers > 0)
    hidden_states = [x]
    for index in range(config.num_layers):
      x = EncoderLayer(config, self.dropout, self.dtype, name=f"layers_{index}")(x, key_mask, train)
      x = freeze(x, index < self.num_frozen_layers)
      hidden_states.append(x)
    hidden_states[-1] = two_pass_layer_norm(LAYER_NORM_EPSILON, self.dtype, "layer_norm")(x)
    mask = jnp.ones(x.shape[:2]) if key_mask is None else key_mask.astype(jnp.float32)
    return {"hidden_states": tuple(hidden_states), "last_hidden_state": hidden_states[-1], "frame_mask": mask}


class WhisperTopLayers(nn.Module):
  """Layers `first_layer`.. of the encoder and its final layer norm, from the hidden state that enters them.

  For fine-tuning the top of a frozen encoder from cached hidden states: parameter names equal
  `WhisperEncoder`'s, so `top_layer_params` cuts them from the full encoder's params. Returns the hidden states
  these layers make (the last after the final layer norm).
  """

  config: WhisperEncoderConfig
  first_layer: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, key_mask, train: bool = False):
    if not 0 <= self.first_layer < self.config.num_layers:
      raise ValueError(f"first_layer={self.first_layer} must be in [0, {self.config.num_layers}).")
    hidden_states = []
    for index in range(self.first_layer, self.config.num_layers):
      x = EncoderLayer(self.config, self.dropout, self.dtype, name=f"layers_{index}")(
        x.astype(self.dtype), key_mask, train
      )
      hidden_states.append(x)
    hidden_states[-1] = two_pass_layer_norm(LAYER_NORM_EPSILON, self.dtype, "layer_norm")(x)
    return tuple(hidden_states)


def top_layer_params(params: dict, first_layer: int) -> dict:
  """The parameters of `WhisperTopLayers(first_layer)` out of a whole encoder's `params`."""
  return {
    name: value
    for name, value in params.items()
    if name == "layer_norm" or (name.startswith("layers_") and int(name.split("_")[1]) >= first_layer)
  }


# ----------------------------------------------------------------------------------------------
# CTranslate2 checkpoints.
# ----------------------------------------------------------------------------------------------
def _float(model: convert.CTranslate2Model, name: str) -> np.ndarray:
  return np.asarray(model[name], np.float32)  # float16 (or bfloat16) weights; computed in float32


def whisper_encoder_params(model: convert.CTranslate2Model, config: WhisperEncoderConfig) -> dict:
  """The Flax `params` of `WhisperEncoder(config)` from a CTranslate2 Whisper model, shapes checked."""
  missing = [
    name
    for name in ("encoder/conv1/weight", "encoder/conv2/weight", "encoder/layer_norm/gamma")
    + tuple(f"encoder/layer_{i}/self_attention/linear_0/weight" for i in range(config.num_layers))
    if name not in model
  ]
  if missing:
    raise ValueError(
      f"The CTranslate2 model lacks {', '.join(missing)}: not a Whisper model with {config.num_layers} encoder layers."
    )
  conv = lambda name: {
    "kernel": _float(model, f"{name}/weight").transpose(2, 1, 0),  # [out, in, k] -> [k, in, out]
    "bias": _float(model, f"{name}/bias"),
  }
  dense = lambda name: {"kernel": _float(model, f"{name}/weight").T, "bias": _float(model, f"{name}/bias")}
  norm = lambda name: {"scale": _float(model, f"{name}/gamma"), "bias": _float(model, f"{name}/beta")}
  params = {"conv_1": conv("encoder/conv1"), "conv_2": conv("encoder/conv2"), "layer_norm": norm("encoder/layer_norm")}
  width = config.hidden_size
  for index in range(config.num_layers):
    prefix = f"encoder/layer_{index}"
    fused = dense(f"{prefix}/self_attention/linear_0")  # [H, 3H]: query | key | value
    attention = {
      name: {
        "kernel": fused["kernel"][:, part * width : (part + 1) * width],
        "bias": fused["bias"][part * width : (part + 1) * width],
      }
      for part, name in enumerate(("query", "key", "value"))
    }
    attention["output"] = dense(f"{prefix}/self_attention/linear_1")
    params[f"layers_{index}"] = {
      "attention": attention,
      "attention_layer_norm": norm(f"{prefix}/self_attention/layer_norm"),
      "feed_forward_layer_norm": norm(f"{prefix}/ffn/layer_norm"),
      "feed_forward_in": dense(f"{prefix}/ffn/linear_0"),
      "feed_forward_out": dense(f"{prefix}/ffn/linear_1"),
    }
  params["positions"] = _float(model, "encoder/position_encodings/encodings")
  features = jax.ShapeDtypeStruct((1, 2, config.num_mel_bins), np.float32)
  expected = jax.eval_shape(WhisperEncoder(config).init, jax.random.key(0), features)["params"]
  jax.tree.map(lambda want, got: None, expected, params)  # raises if the trees differ in structure
  mismatched = [
    f"{'/'.join(str(k.key) for k in path)}: checkpoint {got.shape}, config {want.shape}"
    for (path, want), got in zip(jax.tree_util.tree_leaves_with_path(expected), jax.tree.leaves(params))
    if want.shape != got.shape
  ]
  if mismatched:
    raise ValueError(f"Whisper weights disagree with the architecture read off them: {'; '.join(mismatched)}.")
  return params


@functools.lru_cache(maxsize=2)
def load_whisper_encoder(folder: str = "") -> tuple[WhisperEncoderConfig, dict]:
  """(config, params) of the Whisper encoder in a CTranslate2 folder; "" = the installed Whisper base."""
  if not folder:
    from emojax import pretrained  # joins the installed parts once, or says how to install them

    folder = str(pretrained.whisper_folder())
  model = convert.read_ctranslate2_model(Path(folder))
  config = WhisperEncoderConfig.from_ctranslate2(model)
  return config, whisper_encoder_params(model, config)
