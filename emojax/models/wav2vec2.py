"""wav2vec 2.0 (Baevski et al. 2020) as a Flax linen encoder that runs Hugging Face checkpoints.

The module reproduces transformers' `Wav2Vec2Model` operation for operation, so that weights converted by
`load_wav2vec2` give the same hidden states (tests/test_wav2vec2.py checks this against
outputs saved from transformers, to 1e-4). That is why some choices look odd: the GroupNorm of the first conv
also normalises over padded audio, the positional convolution drops its last frame for even kernels, and the
layer norms of the conv stack use a fixed epsilon of 1e-5. Not reproduced: SpecAugment masking, LayerDrop and
the adapter; speech models above this encoder do their own augmentation.

Parameter names, HF -> here: `feature_extractor.conv_layers.{i}.{conv,layer_norm}` -> `feature_encoder/{conv,norm}_{i}`,
`feature_projection.{layer_norm,projection}` -> `feature_layer_norm`, `feature_projection`,
`encoder.pos_conv_embed.conv` -> `position_conv`, `encoder.layer_norm` -> `encoder_layer_norm`,
`encoder.layers.{i}.attention.{q,k,v,out}_proj` -> `layers_{i}/attention/{query,key,value,output}`,
`...layer_norm`, `...final_layer_norm` -> `attention_layer_norm`, `feed_forward_layer_norm`,
`...feed_forward.{intermediate,output}_dense` -> `feed_forward_in`, `feed_forward_out`.
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

# HF's "gelu" is the exact erf form, not the tanh approximation Flax uses by default.
ACTIVATIONS = {"gelu": functools.partial(nn.gelu, approximate=False), "relu": nn.relu}
# torch's LayerNorm/GroupNorm default; HF uses it (not config.layer_norm_eps) inside the conv feature encoder.
CONV_NORM_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Config:
  """The architecture fields of a Hugging Face wav2vec 2.0 `config.json`; defaults are wav2vec2-base."""

  conv_dim: tuple[int, ...] = (512,) * 7
  conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
  conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
  conv_bias: bool = False
  feat_extract_norm: str = "group"
  feat_extract_activation: str = "gelu"
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"
  layer_norm_eps: float = 1e-5
  num_conv_pos_embeddings: int = 128
  num_conv_pos_embedding_groups: int = 16
  do_stable_layer_norm: bool = False
  hidden_dropout: float = 0.1
  attention_dropout: float = 0.1
  activation_dropout: float = 0.1
  feat_proj_dropout: float = 0.0

  def __post_init__(self):
    for name in ("conv_dim", "conv_kernel", "conv_stride"):  # JSON gives lists; a frozen config wants tuples.
      object.__setattr__(self, name, tuple(int(value) for value in getattr(self, name)))
    if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride):
      raise ValueError(
        f"conv_dim, conv_kernel and conv_stride must have one entry per conv layer; got lengths "
        f"{len(self.conv_dim)}, {len(self.conv_kernel)}, {len(self.conv_stride)}."
      )
    if self.feat_extract_norm not in ("group", "layer"):
      raise ValueError(f"feat_extract_norm={self.feat_extract_norm!r} is not supported; use 'group' or 'layer'.")
    for name in ("hidden_act", "feat_extract_activation"):
      if getattr(self, name) not in ACTIVATIONS:
        raise ValueError(f"{name}={getattr(self, name)!r} is not supported; use one of {sorted(ACTIVATIONS)}.")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(
        f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}."
      )
    if self.hidden_size % self.num_conv_pos_embedding_groups:
      raise ValueError(
        f"hidden_size={self.hidden_size} is not divisible by "
        f"num_conv_pos_embedding_groups={self.num_conv_pos_embedding_groups}."
      )

  @classmethod
  def from_hf_json(cls, path) -> "Wav2Vec2Config":
    """Reads a Hugging Face `config.json`, refusing architectures this module would silently get wrong."""
    path = Path(path)
    hf = convert.read_hf_config(path, "wav2vec 2.0")
    problems = []
    if hf.get("model_type", "wav2vec2") != "wav2vec2":
      problems.append(f"model_type={hf['model_type']!r} (only 'wav2vec2' checkpoints are supported)")
    if hf.get("add_adapter"):
      problems.append("add_adapter=true (the adapter is not implemented)")
    if hf.get("adapter_attn_dim") is not None:
      problems.append("adapter_attn_dim is set (attention adapters are not implemented)")
    if problems:
      raise ValueError(f"{path}: unsupported {'; '.join(problems)}.")
    fields = {field.name: hf[field.name] for field in dataclasses.fields(cls) if field.name in hf}
    try:
      return cls(**fields)
    except ValueError as error:
      raise ValueError(f"{path}: {error}") from error

  @property
  def receptive_field(self) -> int:
    """The fewest audio samples that give one output frame."""
    samples = 1
    for kernel, stride in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
      samples = (samples - 1) * stride + kernel
    return samples


def conv_output_lengths(lengths, config: Wav2Vec2Config):
  """Frames the conv feature encoder makes from `lengths` samples (HF's `_get_feat_extract_output_lengths`)."""
  for kernel, stride in zip(config.conv_kernel, config.conv_stride):
    lengths = (lengths - kernel) // stride + 1
  return lengths


class FeatureEncoder(nn.Module):
  """The strided conv stack from raw waveform [B, S] to features [B, T, conv_dim[-1]]."""

  config: Wav2Vec2Config
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, audio):
    config = self.config
    activation = ACTIVATIONS[config.feat_extract_activation]
    x = audio[..., None].astype(self.dtype)
    for index, (features, kernel, stride) in enumerate(zip(config.conv_dim, config.conv_kernel, config.conv_stride)):
      x = nn.Conv(
        features,
        (kernel,),
        (stride,),
        padding="VALID",
        use_bias=config.conv_bias,
        dtype=self.dtype,
        name=f"conv_{index}",
      )(x)
      if config.feat_extract_norm == "layer":
        x = two_pass_layer_norm(CONV_NORM_EPSILON, self.dtype, f"norm_{index}")(x)
      elif index == 0:
        # One group per channel: each channel is normalised over all of time, per example.
        x = nn.GroupNorm(
          num_groups=features, epsilon=CONV_NORM_EPSILON, use_fast_variance=False, dtype=self.dtype, name="norm_0"
        )(x)
      x = activation(x)
    return x


class SelfAttention(nn.Module):
  """Multi-head self-attention; `key_mask` [B, T] (True = real frame) hides padded frames as keys."""

  num_heads: int
  dropout_rate: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, key_mask, train: bool):
    batch, length, width = x.shape
    head_dim = width // self.num_heads
    project = lambda name: nn.Dense(width, dtype=self.dtype, name=name)(x).reshape(
      batch, length, self.num_heads, head_dim
    )
    query, key, value = project("query"), project("key"), project("value")
    scores = jnp.einsum("bqhd,bkhd->bhqk", query, key) * head_dim**-0.5
    if key_mask is not None:
      scores = jnp.where(key_mask[:, None, None, :], scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(self.dtype)
    weights = nn.Dropout(self.dropout_rate)(weights, deterministic=not train)
    attended = jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(batch, length, width)
    return nn.Dense(width, dtype=self.dtype, name="output")(attended)


class TransformerLayer(nn.Module):
  """One encoder layer: post-LN (wav2vec2-base) or pre-LN when `do_stable_layer_norm` (large, XLS-R)."""

  config: Wav2Vec2Config
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, key_mask, train: bool):
    config = self.config
    dropout = lambda rate, y: nn.Dropout(rate)(y, deterministic=not train)
    attention_norm = two_pass_layer_norm(config.layer_norm_eps, self.dtype, "attention_layer_norm")
    feed_forward_norm = two_pass_layer_norm(config.layer_norm_eps, self.dtype, "feed_forward_layer_norm")
    attention = SelfAttention(config.num_attention_heads, config.attention_dropout, self.dtype, name="attention")

    def feed_forward(y):
      y = nn.Dense(config.intermediate_size, dtype=self.dtype, name="feed_forward_in")(y)
      y = dropout(config.activation_dropout, ACTIVATIONS[config.hidden_act](y))
      return dropout(config.hidden_dropout, nn.Dense(config.hidden_size, dtype=self.dtype, name="feed_forward_out")(y))

    if config.do_stable_layer_norm:
      x = x + dropout(config.hidden_dropout, attention(attention_norm(x), key_mask, train))
      return x + feed_forward(feed_forward_norm(x))
    x = attention_norm(x + dropout(config.hidden_dropout, attention(x, key_mask, train)))
    return feed_forward_norm(x + feed_forward(x))


class Wav2Vec2Encoder(nn.Module):
  """wav2vec 2.0 from 16 kHz waveform to contextual frame features (one frame per 20 ms for the usual convs).

  Freezing, for fine-tuning on small emotion datasets: `freeze_feature_encoder` stops gradients at the conv
  feature encoder's output (HF's `freeze_feature_encoder()`); `num_frozen_layers=n` also stops them at the front
  end and at the first n transformer layers, so only layers n.. (and, for the pre-LN variant, the final layer
  norm) learn. Every returned tensor computed only by frozen parts (`extract_features`, `hidden_states[:n + 1]`)
  is a gradient constant too, so a weighted sum over hidden states cannot leak gradients into them. Frozen
  parameters get exactly zero gradients; weight decay would still move them, so the trainer leaves
  them out of the optimizer (`frozen_parameters` of the speech models, `is_frozen_parameter` here).

  `__call__(audio [B, S] float, lengths [B] int valid samples or None, train)` returns a dict:
    last_hidden_state [B, T, H]; hidden_states: num_hidden_layers + 1 arrays, the input of the first layer then
    each layer's output, as transformers 5 returns them (for the pre-LN variant the last one is before the final
    layer norm; transformers 4 returned last_hidden_state there instead); frame_mask [B, T] float, 1 where a frame
    covers real audio; extract_features [B, T, conv_dim[-1]], the layer-normed conv features.
  With `lengths`, padded frames are zeroed before the positional convolution and hidden from attention as keys,
  as HF does with an attention_mask. Dropout needs an rng named 'dropout' when `train=True`.
  """

  config: Wav2Vec2Config
  dtype: Any = jnp.float32
  freeze_feature_encoder: bool = False
  num_frozen_layers: int = 0

  @nn.compact
  def __call__(self, audio, lengths=None, train: bool = False):
    config = self.config
    if not 0 <= self.num_frozen_layers <= config.num_hidden_layers:
      raise ValueError(
        f"num_frozen_layers={self.num_frozen_layers} must be between 0 and "
        f"num_hidden_layers={config.num_hidden_layers}."
      )
    if audio.ndim != 2 or audio.shape[1] < config.receptive_field:
      raise ValueError(
        f"audio must be [batch, samples] with at least {config.receptive_field} samples "
        f"(one frame); got shape {audio.shape}."
      )
    front_end_frozen = self.num_frozen_layers > 0
    freeze = lambda y, frozen: jax.lax.stop_gradient(y) if frozen else y
    dropout = lambda rate, y: nn.Dropout(rate)(y, deterministic=not train)

    features = FeatureEncoder(config, self.dtype, name="feature_encoder")(audio)
    features = freeze(features, self.freeze_feature_encoder or front_end_frozen)
    num_frames = features.shape[1]
    if lengths is None:
      frame_mask, key_mask = jnp.ones(features.shape[:2], bool), None
    else:
      frame_mask = jnp.arange(num_frames)[None, :] < conv_output_lengths(jnp.asarray(lengths), config)[:, None]
      key_mask = frame_mask

    extract_features = two_pass_layer_norm(config.layer_norm_eps, self.dtype, "feature_layer_norm")(features)
    x = nn.Dense(config.hidden_size, dtype=self.dtype, name="feature_projection")(extract_features)
    x = dropout(config.feat_proj_dropout, x)
    if key_mask is not None:
      x = jnp.where(key_mask[..., None], x, 0)

    kernel = config.num_conv_pos_embeddings
    positions = nn.Conv(
      config.hidden_size,
      (kernel,),
      padding=[(kernel // 2, kernel // 2)],
      feature_group_count=config.num_conv_pos_embedding_groups,
      dtype=self.dtype,
      name="position_conv",
    )(x)
    if kernel % 2 == 0:  # Symmetric padding of an even kernel makes one frame too many.
      positions = positions[:, :-1]
    x = x + ACTIVATIONS[config.feat_extract_activation](positions)
    encoder_norm = two_pass_layer_norm(config.layer_norm_eps, self.dtype, "encoder_layer_norm")
    if not config.do_stable_layer_norm:
      x = encoder_norm(x)
    x = freeze(dropout(config.hidden_dropout, x), front_end_frozen)

    hidden_states = [x]
    for index in range(config.num_hidden_layers):
      x = TransformerLayer(config, self.dtype, name=f"layers_{index}")(x, key_mask, train)
      x = freeze(x, index < self.num_frozen_layers)
      hidden_states.append(x)
    last_hidden_state = encoder_norm(x) if config.do_stable_layer_norm else x
    return {
      "last_hidden_state": last_hidden_state,
      "hidden_states": tuple(hidden_states),
      "frame_mask": frame_mask.astype(jnp.float32),
      "extract_features": freeze(extract_features, front_end_frozen),
    }


def is_frozen_parameter(
  path: str, config: Wav2Vec2Config, freeze_feature_encoder: bool, num_frozen_layers: int
) -> bool:
  """Whether the encoder parameter at `path` ("layers_3/attention/query/kernel") gets no gradient.

  Mirrors the stop_gradient placement in `Wav2Vec2Encoder`, so optimizers can leave exactly those
  parameters alone (weight decay would otherwise still shrink them).
  """
  top = path.split("/")[0]
  if top == "feature_encoder":
    return freeze_feature_encoder or num_frozen_layers > 0
  if top.startswith("layers_"):
    return int(top.split("_")[1]) < num_frozen_layers
  if top == "encoder_layer_norm" and config.do_stable_layer_norm:
    return False  # the pre-LN variant's final norm sits after the last layer
  return num_frozen_layers > 0  # feature projection, positional convolution, post-LN encoder norm


# ----------------------------------------------------------------------------------------------
# Hugging Face checkpoints.
# ----------------------------------------------------------------------------------------------
# Heads of Wav2Vec2For* classes saved without the `wav2vec2.` prefix of their backbone.
_HEAD_PREFIXES = (
  "lm_head.",
  "quantizer.",
  "project_q.",
  "project_hid.",
  "classifier.",
  "projector.",
  "masked_spec_embed",
)


def _position_conv_kernel(backbone: dict, missing: list) -> np.ndarray | None:
  """The positional conv's effective weight; HF stores it weight-normed with dim=2 (one norm per kernel tap)."""
  prefix = "encoder.pos_conv_embed.conv."
  for magnitude, direction in (
    ("weight_g", "weight_v"),
    ("parametrizations.weight.original0", "parametrizations.weight.original1"),
  ):
    if prefix + magnitude in backbone and prefix + direction in backbone:
      g, v = (np.asarray(backbone[prefix + name], np.float32) for name in (magnitude, direction))
      return g * v / np.sqrt(np.square(v).sum(axis=(0, 1), keepdims=True))
  if prefix + "weight" in backbone:
    return np.asarray(backbone[prefix + "weight"], np.float32)
  missing.append(prefix + "weight_g/weight_v (or parametrizations.weight.original0/original1)")
  return None


def wav2vec2_params_from_hf(state_dict: dict, config: Wav2Vec2Config) -> dict:
  """The Flax `params` of `Wav2Vec2Encoder(config)` from a HF state dict (Wav2Vec2Model or any Wav2Vec2For*)."""
  backbone = convert.backbone_of(state_dict, "wav2vec2.", _HEAD_PREFIXES)
  plan = convert.ParamPlan()
  for index in range(len(config.conv_dim)):
    torch_layer = f"feature_extractor.conv_layers.{index}"
    plan.add(
      ("feature_encoder", f"conv_{index}"), f"{torch_layer}.conv", convert.transpose_conv1d, bias=config.conv_bias
    )
    if config.feat_extract_norm == "layer" or index == 0:
      plan.norm(("feature_encoder", f"norm_{index}"), f"{torch_layer}.layer_norm")
  plan.norm(("feature_layer_norm",), "feature_projection.layer_norm")
  plan.dense(("feature_projection",), "feature_projection.projection")
  plan.entries.append((("position_conv", "bias"), "encoder.pos_conv_embed.conv.bias", None))
  plan.norm(("encoder_layer_norm",), "encoder.layer_norm")
  for index in range(config.num_hidden_layers):
    layer, torch_layer = f"layers_{index}", f"encoder.layers.{index}"
    for flax_name, torch_name in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"), ("output", "out_proj")):
      plan.dense((layer, "attention", flax_name), f"{torch_layer}.attention.{torch_name}")
    plan.norm((layer, "attention_layer_norm"), f"{torch_layer}.layer_norm")
    plan.dense((layer, "feed_forward_in"), f"{torch_layer}.feed_forward.intermediate_dense")
    plan.dense((layer, "feed_forward_out"), f"{torch_layer}.feed_forward.output_dense")
    plan.norm((layer, "feed_forward_layer_norm"), f"{torch_layer}.final_layer_norm")
  missing = []
  position_kernel = _position_conv_kernel(backbone, missing)
  extra = {} if position_kernel is None else {("position_conv", "kernel"): convert.transpose_conv1d(position_kernel)}
  audio = jax.ShapeDtypeStruct((1, config.receptive_field), np.float32)
  expected = jax.eval_shape(Wav2Vec2Encoder(config).init, jax.random.key(0), audio)["params"]
  return plan.build(backbone, expected, extra=extra, missing=missing)


def load_wav2vec2(folder) -> tuple[Wav2Vec2Config, dict]:
  """(config, params) for `Wav2Vec2Encoder` from a Hugging Face wav2vec 2.0 folder."""
  state_dict = convert.load_hf_state_dict(folder)  # first: a missing folder gets the how-to-download error
  config = Wav2Vec2Config.from_hf_json(Path(folder) / "config.json")
  return config, wav2vec2_params_from_hf(state_dict, config)
