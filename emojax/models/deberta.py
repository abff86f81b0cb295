"""DeBERTa-v2/v3 (He et al. 2021, 2023) as a Flax linen text encoder that runs Hugging Face checkpoints.

The module reproduces transformers' `DebertaV2Model` operation for operation, so that weights loaded by
`load_deberta_v2` give the same hidden states (tests/test_deberta.py checks this against outputs saved from
transformers, to 1e-4). Attention is disentangled: besides content-to-content scores, each query scores the
key's *relative position* (c2p) and each key scores the query's relative position (p2c), both read from one
table of relative-position embeddings, log-bucketed past `position_buckets // 2` tokens. Some choices look odd
because HF makes them: the scale 1/sqrt(head_dim * (1 + number of relative terms)) applies even without relative
attention, a padded token is masked as a query too (its row attends uniformly to every token, so its output is
defined but meaningless), and the optional ConvLayer of deberta-v2-xlarge mixes the embeddings into the first
layer's output. Not ported: the pooler and the masked-LM heads, z_steps (always 0 in `DebertaV2Model`), and
`torch.nn.Embedding`'s padding_idx, which only stops gradients to the pad row (masked out here anyway).

Parameter names, HF -> here: `embeddings.{word,position,token_type}_embeddings` -> `{word,position,token_type}_
embeddings`, `embeddings.embed_proj` -> `embedding_projection`, `embeddings.LayerNorm` -> `embedding_layer_norm`,
`encoder.rel_embeddings` -> `relative_position_embeddings`, `encoder.LayerNorm` -> `relative_position_layer_norm`,
`encoder.conv.{conv,LayerNorm}` -> `convolution`, `convolution_layer_norm`,
`encoder.layer.{i}.attention.self.{query,key,value,pos_key,pos_query}_proj` ->
`layers_{i}/attention/{query,key,value,position_key,position_query}`,
`...attention.output.{dense,LayerNorm}` -> `attention_output`, `attention_layer_norm`,
`...intermediate.dense`, `...output.{dense,LayerNorm}` -> `feed_forward_in`, `feed_forward_out`,
`feed_forward_layer_norm`.
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
from emojax.models.wav2vec2 import ACTIVATIONS as _WAV2VEC2_ACTIVATIONS

# HF's "gelu" is the exact erf form; "gelu_new" and "gelu_pytorch_tanh" are the tanh approximation.
ACTIVATIONS = {
  **_WAV2VEC2_ACTIVATIONS,
  "gelu_new": functools.partial(nn.gelu, approximate=True),
  "gelu_pytorch_tanh": functools.partial(nn.gelu, approximate=True),
  "tanh": jnp.tanh,
}
RELATIVE_ATTENTION_TYPES = ("c2p", "p2c")
# What transformers assumes for a field that a config.json leaves out (its DebertaV2Config defaults and the
# `getattr(config, name, default)` fallbacks of modeling_deberta_v2.py); they differ from this class's defaults.
_HF_DEFAULTS = dict(
  vocab_size=128100,
  hidden_size=1536,
  num_hidden_layers=24,
  num_attention_heads=24,
  intermediate_size=6144,
  type_vocab_size=0,
  layer_norm_eps=1e-7,
  relative_attention=False,
  position_buckets=-1,
  pos_att_type=(),
  share_att_key=False,
  norm_rel_ebd="none",
  position_biased_input=True,
  conv_kernel_size=0,
  conv_groups=1,
  conv_act="tanh",
)


@dataclasses.dataclass(frozen=True)
class DebertaV2Config:
  """The architecture fields of a Hugging Face DeBERTa-v2 `config.json`; defaults are microsoft/deberta-v3-base.

  `pos_att_type` may be given as HF writes it, a list or a "p2c|c2p" string; it is kept as a tuple.
  `max_relative_positions < 1` means max_position_embeddings, `embedding_size=None` means hidden_size,
  `position_buckets <= 0` means relative distances are clamped instead of log-bucketed, and
  `conv_kernel_size=0` means no ConvLayer, as in transformers.
  """

  vocab_size: int = 128100
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"
  max_position_embeddings: int = 512
  type_vocab_size: int = 0
  layer_norm_eps: float = 1e-7
  relative_attention: bool = True
  max_relative_positions: int = -1
  position_buckets: int = 256
  pos_att_type: tuple[str, ...] = ("p2c", "c2p")
  share_att_key: bool = True
  norm_rel_ebd: str = "layer_norm"
  position_biased_input: bool = False
  pad_token_id: int = 0
  embedding_size: int | None = None
  conv_kernel_size: int = 0
  conv_groups: int = 1
  conv_act: str = "tanh"
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1

  def __post_init__(self):
    pos_att_type = self.pos_att_type
    if isinstance(pos_att_type, str):
      pos_att_type = pos_att_type.split("|")
    pos_att_type = tuple(kind.strip().lower() for kind in (pos_att_type or ()) if kind.strip())
    object.__setattr__(self, "pos_att_type", pos_att_type)  # A frozen config wants a hashable tuple.
    unknown = sorted(set(pos_att_type) - set(RELATIVE_ATTENTION_TYPES))
    if unknown:
      raise ValueError(
        f"pos_att_type={list(pos_att_type)} has {unknown}, which DeBERTa-v2 does not define "
        f"(DeBERTa-v1's 'p2p' is not supported); use a subset of {list(RELATIVE_ATTENTION_TYPES)}."
      )
    norms = {part.strip() for part in self.norm_rel_ebd.lower().split("|")}
    if not norms <= {"none", "layer_norm"}:
      raise ValueError(f"norm_rel_ebd={self.norm_rel_ebd!r} is not supported; use 'layer_norm' or 'none'.")
    for name in ("hidden_act", "conv_act"):
      if getattr(self, name) not in ACTIVATIONS:
        raise ValueError(f"{name}={getattr(self, name)!r} is not supported; use one of {sorted(ACTIVATIONS)}.")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(
        f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}."
      )
    if self.type_vocab_size < 0:
      raise ValueError(f"type_vocab_size={self.type_vocab_size} must be 0 (no token types) or more.")
    if self.conv_kernel_size < 0 or (self.conv_kernel_size and self.conv_kernel_size % 2 == 0):
      # HF pads (k - 1) // 2 on both sides, so an even kernel makes one token too few and its ConvLayer fails.
      raise ValueError(f"conv_kernel_size={self.conv_kernel_size} must be 0 (no ConvLayer) or odd.")
    if self.conv_kernel_size and self.hidden_size % self.conv_groups:
      raise ValueError(f"hidden_size={self.hidden_size} is not divisible by conv_groups={self.conv_groups}.")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      if not 0 <= getattr(self, name) < 1:
        raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1).")

  @classmethod
  def from_hf_json(cls, path) -> "DebertaV2Config":
    """Reads a Hugging Face `config.json`, refusing architectures this module would silently get wrong."""
    path = Path(path)
    hf = convert.read_hf_config(path, "DeBERTa-v2")
    problems = []
    if hf.get("model_type", "deberta-v2") != "deberta-v2":
      problems.append(
        f"model_type={hf['model_type']!r} (this loader reads 'deberta-v2' checkpoints, which "
        f"include DeBERTa-v3; DeBERTa-v1 'deberta' attends differently)"
      )
    head_size = hf.get("attention_head_size")
    hidden_size, num_heads = (hf.get(name, _HF_DEFAULTS[name]) for name in ("hidden_size", "num_attention_heads"))
    if head_size is not None and head_size * num_heads != hidden_size:
      problems.append(f"attention_head_size={head_size} (only hidden_size / num_attention_heads is ported)")
    if problems:
      raise ValueError(f"{path}: unsupported {'; '.join(problems)}.")
    fields = {
      field.name: hf.get(field.name, _HF_DEFAULTS.get(field.name, field.default)) for field in dataclasses.fields(cls)
    }
    if fields["pad_token_id"] is None:
      fields["pad_token_id"] = 0
    try:
      return cls(**fields)
    except ValueError as error:
      raise ValueError(f"{path}: {error}") from error

  @property
  def relative_position_limit(self) -> int:
    """The largest relative distance the buckets distinguish (HF's resolved `max_relative_positions`)."""
    return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

  @property
  def relative_position_span(self) -> int:
    """Half the rows of the relative-position embedding table (HF's `pos_ebd_size` / `att_span`)."""
    return self.position_buckets if self.position_buckets > 0 else self.relative_position_limit


def log_bucket_positions(relative_positions: np.ndarray, bucket_size: int, max_position: int) -> np.ndarray:
  """HF's `make_log_bucket_position`: distances under bucket_size // 2 kept, longer ones log-compressed.

  Computed in float32 numpy, op for op as torch does on CPU, so that a distance near a bucket edge falls in the
  same bucket (tests/test_deberta.py checks every distance up to 1023 at deberta-v3-base's settings).
  """
  relative_positions = np.asarray(relative_positions, np.int64)
  middle = bucket_size // 2
  absolute = np.where(
    (relative_positions < middle) & (relative_positions > -middle), middle - 1, np.abs(relative_positions)
  )
  ratio = np.log(absolute.astype(np.float32) / np.float32(middle))
  log_positions = np.ceil(ratio / np.log(np.float32((max_position - 1) / middle)) * np.float32(middle - 1)) + middle
  buckets = np.where(
    absolute <= middle,
    relative_positions.astype(np.float32),
    log_positions * np.sign(relative_positions).astype(np.float32),
  )
  return buckets.astype(np.int64)


@functools.lru_cache(maxsize=32)
def relative_positions(length: int, position_buckets: int, max_position: int) -> np.ndarray:
  """[length, length] int: the (bucketed) distance query - key, HF's `build_relative_position`."""
  positions = np.arange(length)
  distances = positions[:, None] - positions[None, :]
  if position_buckets > 0 and max_position > 0:
    distances = log_bucket_positions(distances, position_buckets, max_position)
  distances.setflags(write=False)  # Cached and shared between calls.
  return distances


class DisentangledSelfAttention(nn.Module):
  """Self-attention scored by content and relative position; `attention_mask` [B, T] bool, True = real token."""

  config: DebertaV2Config
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, attention_mask, relative_embeddings, train: bool):
    config = self.config
    batch, length, width = x.shape
    num_heads = config.num_attention_heads
    head_dim = width // num_heads
    dense = lambda name: nn.Dense(width, dtype=self.dtype, name=name)
    heads = lambda y: y.reshape(*y.shape[:-1], num_heads, head_dim)
    query_projection, key_projection = dense("query"), dense("key")
    query, key, value = heads(query_projection(x)), heads(key_projection(x)), heads(dense("value")(x))

    # HF counts the relative terms in the scale even when relative attention is off.
    # A Python float (the float32 value torch uses) stays weakly typed, so bfloat16 scores stay bfloat16.
    scale = float(np.sqrt(np.float32(head_dim * (1 + len(config.pos_att_type)))))
    scores = jnp.einsum("bqhd,bkhd->bhqk", query, key) / scale
    if config.relative_attention and config.pos_att_type:
      span = config.relative_position_span
      relative_embeddings = nn.Dropout(config.hidden_dropout_prob)(relative_embeddings, deterministic=not train)
      relative_embeddings = relative_embeddings[: 2 * span]
      distance = relative_positions(length, config.position_buckets, config.relative_position_limit)
      gather = lambda table, index: jnp.take_along_axis(
        table, jnp.broadcast_to(index, table.shape[:-1] + (length,)), axis=-1
      )
      if "c2p" in config.pos_att_type:
        position_key = heads((key_projection if config.share_att_key else dense("position_key"))(relative_embeddings))
        # Query i against the embedding of its distance to key j, i - j, shifted to a row of the table.
        content_to_position = jnp.einsum("bqhd,rhd->bhqr", query, position_key)
        index = np.clip(distance + span, 0, 2 * span - 1)
        scores = scores + gather(content_to_position, index) / scale
      if "p2c" in config.pos_att_type:
        position_query = heads(
          (query_projection if config.share_att_key else dense("position_query"))(relative_embeddings)
        )
        # Key j against the embedding of the query's distance seen from the key, -(j - i); HF gathers along
        # the key's rows and transposes, which the transposed index does here.
        position_to_content = jnp.einsum("bkhd,rhd->bhkr", key, position_query)
        index = np.clip(-distance + span, 0, 2 * span - 1)
        scores = scores + jnp.swapaxes(gather(position_to_content, index), -1, -2) / scale

    # HF masks padded tokens as queries too; their rows then attend uniformly, as finfo.min everywhere gives.
    pair_mask = attention_mask[:, None, :, None] & attention_mask[:, None, None, :]
    scores = jnp.where(pair_mask, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(self.dtype)
    weights = nn.Dropout(config.attention_probs_dropout_prob)(weights, deterministic=not train)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(batch, length, width)


class DebertaV2Layer(nn.Module):
  """One post-LN encoder layer: disentangled attention, then a feed-forward, each with residual LayerNorm."""

  config: DebertaV2Config
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, attention_mask, relative_embeddings, train: bool):
    config = self.config
    dropout = lambda y: nn.Dropout(config.hidden_dropout_prob)(y, deterministic=not train)
    dense = lambda features, name: nn.Dense(features, dtype=self.dtype, name=name)
    attended = DisentangledSelfAttention(config, self.dtype, name="attention")(
      x, attention_mask, relative_embeddings, train
    )
    x = two_pass_layer_norm(config.layer_norm_eps, self.dtype, "attention_layer_norm")(
      x + dropout(dense(config.hidden_size, "attention_output")(attended))
    )
    hidden = ACTIVATIONS[config.hidden_act](dense(config.intermediate_size, "feed_forward_in")(x))
    return two_pass_layer_norm(config.layer_norm_eps, self.dtype, "feed_forward_layer_norm")(
      x + dropout(dense(config.hidden_size, "feed_forward_out")(hidden))
    )


class DebertaV2Encoder(nn.Module):
  """DeBERTa-v2/v3 from token ids to contextual token features (HF `DebertaV2Model`'s last_hidden_state).

  `__call__(input_ids [B, T] int, attention_mask [B, T] (1 = real token; None = all real), token_type_ids [B, T]
  int or None (zeros), train)` returns last_hidden_state [B, T, hidden_size] in float32. Rows of padded tokens
  are computed as HF computes them (their embeddings zeroed, their attention uniform) but carry no meaning:
  pool with the mask. Dropout needs an rng named 'dropout' when `train=True`.
  """

  config: DebertaV2Config
  dtype: Any = jnp.float32
  freeze_word_embeddings: bool = False  # no gradient into the vocabulary matrix (cheaper fine-tuning)

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None, train: bool = False):
    config = self.config
    if input_ids.ndim != 2:
      raise ValueError(f"input_ids must be [batch, tokens]; got shape {input_ids.shape}.")
    length = input_ids.shape[1]
    if config.position_biased_input and length > config.max_position_embeddings:
      raise ValueError(
        f"{length} tokens exceed max_position_embeddings={config.max_position_embeddings} of this "
        f"checkpoint's absolute positions; truncate the text to at most that many tokens."
      )
    if attention_mask is None:
      attention_mask = jnp.ones(input_ids.shape, bool)
    attention_mask = jnp.asarray(attention_mask).astype(bool)
    dropout = lambda y: nn.Dropout(config.hidden_dropout_prob)(y, deterministic=not train)
    embedding_size = config.embedding_size or config.hidden_size
    embed = lambda rows, name: nn.Embed(rows, embedding_size, dtype=self.dtype, name=name)

    x = embed(config.vocab_size, "word_embeddings")(input_ids)
    if self.freeze_word_embeddings:
      x = jax.lax.stop_gradient(x)
    if config.position_biased_input:
      x = x + embed(config.max_position_embeddings, "position_embeddings")(jnp.arange(length))[None]
    if config.type_vocab_size > 0:
      if token_type_ids is None:
        token_type_ids = jnp.zeros_like(input_ids)
      x = x + embed(config.type_vocab_size, "token_type_embeddings")(token_type_ids)
    if embedding_size != config.hidden_size:
      x = nn.Dense(config.hidden_size, use_bias=False, dtype=self.dtype, name="embedding_projection")(x)
    x = two_pass_layer_norm(config.layer_norm_eps, self.dtype, "embedding_layer_norm")(x)
    x = dropout(x * attention_mask[..., None].astype(x.dtype))
    embeddings = x

    relative_embeddings = None
    if config.relative_attention:
      rows = 2 * config.relative_position_span
      relative_embeddings = nn.Embed(rows, config.hidden_size, dtype=self.dtype, name="relative_position_embeddings")(
        jnp.arange(rows)
      )
      if "layer_norm" in config.norm_rel_ebd.lower():
        relative_embeddings = two_pass_layer_norm(config.layer_norm_eps, self.dtype, "relative_position_layer_norm")(
          relative_embeddings
        )

    for index in range(config.num_hidden_layers):
      x = DebertaV2Layer(config, self.dtype, name=f"layers_{index}")(x, attention_mask, relative_embeddings, train)
      if index == 0 and config.conv_kernel_size:
        x = self._convolution(embeddings, x, attention_mask, dropout)
    return x.astype(jnp.float32)

  def _convolution(self, embeddings, first_layer_output, attention_mask, dropout):
    """HF's ConvLayer: a convolution over the embeddings, added to the first layer's output and layer-normed."""
    config = self.config
    padding = (config.conv_kernel_size - 1) // 2
    mixed = nn.Conv(
      config.hidden_size,
      (config.conv_kernel_size,),
      padding=[(padding, padding)],
      feature_group_count=config.conv_groups,
      dtype=self.dtype,
      name="convolution",
    )(embeddings)
    real = attention_mask[..., None].astype(mixed.dtype)
    mixed = ACTIVATIONS[config.conv_act](dropout(mixed * real))
    norm = two_pass_layer_norm(config.layer_norm_eps, self.dtype, "convolution_layer_norm")
    output = norm(first_layer_output + mixed)
    return output * real


def deberta_v2_params_from_hf(state_dict: dict, config: DebertaV2Config) -> dict:
  """The Flax `params` of `DebertaV2Encoder(config)` from a HF state dict (DebertaV2Model or any DebertaV2For*).

  Names may carry the `deberta.` prefix of the task models; heads beside it (lm_predictions, pooler,
  classifier, ...) and tensors this config does not use are ignored.
  """
  backbone = convert.backbone_of(state_dict, "deberta.")
  plan = convert.ParamPlan()
  table, norm, dense = plan.table, plan.norm, plan.dense
  table(("word_embeddings",), "embeddings.word_embeddings")
  if config.position_biased_input:
    table(("position_embeddings",), "embeddings.position_embeddings")
  if config.type_vocab_size > 0:
    table(("token_type_embeddings",), "embeddings.token_type_embeddings")
  if (config.embedding_size or config.hidden_size) != config.hidden_size:
    dense(("embedding_projection",), "embeddings.embed_proj", bias=False)
  norm(("embedding_layer_norm",), "embeddings.LayerNorm")
  if config.relative_attention:
    table(("relative_position_embeddings",), "encoder.rel_embeddings")
    if "layer_norm" in config.norm_rel_ebd.lower():
      norm(("relative_position_layer_norm",), "encoder.LayerNorm")
  if config.conv_kernel_size:
    plan.add(("convolution",), "encoder.conv.conv", convert.transpose_conv1d)
    norm(("convolution_layer_norm",), "encoder.conv.LayerNorm")
  attention_projections = [("query", "query_proj"), ("key", "key_proj"), ("value", "value_proj")]
  if config.relative_attention and not config.share_att_key:
    attention_projections += [
      (flax_name, torch_name)
      for kind, flax_name, torch_name in (
        ("c2p", "position_key", "pos_key_proj"),
        ("p2c", "position_query", "pos_query_proj"),
      )
      if kind in config.pos_att_type
    ]
  for index in range(config.num_hidden_layers):
    layer, torch_layer = f"layers_{index}", f"encoder.layer.{index}"
    for flax_name, torch_name in attention_projections:
      dense((layer, "attention", flax_name), f"{torch_layer}.attention.self.{torch_name}")
    dense((layer, "attention_output"), f"{torch_layer}.attention.output.dense")
    norm((layer, "attention_layer_norm"), f"{torch_layer}.attention.output.LayerNorm")
    dense((layer, "feed_forward_in"), f"{torch_layer}.intermediate.dense")
    dense((layer, "feed_forward_out"), f"{torch_layer}.output.dense")
    norm((layer, "feed_forward_layer_norm"), f"{torch_layer}.output.LayerNorm")

  tokens = jax.ShapeDtypeStruct((1, 1), np.int32)
  expected = jax.eval_shape(DebertaV2Encoder(config).init, jax.random.key(0), tokens, tokens)["params"]
  return plan.build(backbone, expected)


def load_deberta_v2(folder) -> tuple[DebertaV2Config, dict]:
  """(config, params) for `DebertaV2Encoder` from a Hugging Face DeBERTa-v2/v3 folder."""
  state_dict = convert.load_hf_state_dict(folder)  # first: a missing folder gets the how-to-download error
  config = DebertaV2Config.from_hf_json(Path(folder) / "config.json")
  return config, deberta_v2_params_from_hf(state_dict, config)
