"""BERT-family text encoder in Flax linen, loading Hugging Face checkpoints (config.json + safetensors).

Post-layer-norm BERT as in `transformers.BertModel` (also MiniLM, all-MiniLM-L6-v2, and any checkpoint
with `model_type` "bert"): word + position + token-type embeddings, LayerNorm, then blocks of
self-attention and a GELU feed-forward, each followed by a residual LayerNorm. The pooler is not
ported: classifiers here pool the token states themselves (mean or [CLS]).
"""

import dataclasses
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.models import convert

ACTIVATIONS = {
  "gelu": lambda x: nn.gelu(x, approximate=False),
  "gelu_new": nn.gelu,
  "gelu_pytorch_tanh": nn.gelu,
  "relu": nn.relu,
}
_HEAD_PREFIXES = ("pooler.", "cls.", "classifier.", "qa_outputs.")


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The architecture fields of a Hugging Face BERT `config.json`; defaults are all-MiniLM-L6-v2."""

  vocab_size: int = 30522
  hidden_size: int = 384
  num_hidden_layers: int = 6
  num_attention_heads: int = 12
  intermediate_size: int = 1536
  hidden_act: str = "gelu"
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1

  def __post_init__(self):
    if self.hidden_act not in ACTIVATIONS:
      raise ValueError(f"hidden_act={self.hidden_act!r} is not supported; use one of {sorted(ACTIVATIONS)}.")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(
        f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}."
      )

  @classmethod
  def from_hf_json(cls, path, **overrides) -> "BertConfig":
    """Reads a Hugging Face `config.json`, refusing what this module would silently get wrong."""
    path = Path(path)
    hf = convert.read_hf_config(path, "BERT")
    problems = []
    if hf.get("model_type", "bert") != "bert":
      problems.append(f"model_type={hf['model_type']!r} (this loader reads 'bert' checkpoints)")
    if hf.get("position_embedding_type", "absolute") != "absolute":
      problems.append(f"position_embedding_type={hf['position_embedding_type']!r} (only 'absolute' is ported)")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
      problems.append("a decoder / cross-attention configuration (only the encoder is ported)")
    if problems:
      raise ValueError(f"{path}: unsupported {'; '.join(problems)}.")
    fields = {f.name: hf[f.name] for f in dataclasses.fields(cls) if f.name in hf}
    try:
      return cls(**{**fields, **overrides})
    except (TypeError, ValueError) as error:
      raise ValueError(f"{path}: {error}") from error


class BertLayer(nn.Module):
  config: BertConfig
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, attention_bias, train: bool):
    c = self.config
    heads, head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
    dense = lambda features, name: nn.Dense(features, dtype=self.dtype, name=name)
    layer_norm = lambda name: nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=jnp.float32, name=name)
    split = lambda y: y.reshape(y.shape[:2] + (heads, head_dim))
    query, key, value = (split(dense(c.hidden_size, n)(x)) for n in ("query", "key", "value"))
    scores = jnp.einsum("bqhd,bkhd->bhqk", query, key).astype(jnp.float32) / head_dim**0.5 + attention_bias
    weights = nn.Dropout(c.attention_probs_dropout_prob)(jax.nn.softmax(scores, -1), deterministic=not train)
    context = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(self.dtype), value).reshape(x.shape)
    attended = nn.Dropout(c.hidden_dropout_prob)(
      dense(c.hidden_size, "attention_output")(context), deterministic=not train
    )
    x = layer_norm("attention_layer_norm")(x + attended)
    hidden = ACTIVATIONS[c.hidden_act](dense(c.intermediate_size, "intermediate")(x))
    out = nn.Dropout(c.hidden_dropout_prob)(dense(c.hidden_size, "output")(hidden), deterministic=not train)
    return layer_norm("output_layer_norm")(x + out).astype(self.dtype)


class BertEncoder(nn.Module):
  """`(input_ids, attention_mask[, token_type_ids]) -> last_hidden_state` [B, T, hidden], float32."""

  config: BertConfig
  dtype: jnp.dtype = jnp.float32
  freeze_word_embeddings: bool = False  # no gradient into the vocabulary matrix (cheaper fine-tuning)

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None, train: bool = False):
    c = self.config
    length = input_ids.shape[1]
    if length > c.max_position_embeddings:
      raise ValueError(
        f"Sequences of {length} tokens exceed max_position_embeddings={c.max_position_embeddings}; "
        f"lower config.data.max_length."
      )
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    words = nn.Embed(c.vocab_size, c.hidden_size, name="word_embeddings")(input_ids)
    if self.freeze_word_embeddings:
      words = jax.lax.stop_gradient(words)
    positions = nn.Embed(c.max_position_embeddings, c.hidden_size, name="position_embeddings")(jnp.arange(length))
    x = (
      words + positions[None] + nn.Embed(c.type_vocab_size, c.hidden_size, name="token_type_embeddings")(token_type_ids)
    )
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="embeddings_layer_norm")(x)
    x = nn.Dropout(c.hidden_dropout_prob)(x, deterministic=not train).astype(self.dtype)
    # Padded keys get the most negative float32, as HF does, so a row's softmax ignores them entirely.
    attention_bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min)
    for index in range(c.num_hidden_layers):
      x = BertLayer(c, self.dtype, name=f"layers_{index}")(x, attention_bias, train)
    return x.astype(jnp.float32)


def bert_params_from_hf(state_dict: dict, config: BertConfig) -> dict:
  """The Flax `params` of `BertEncoder(config)` from a HF state dict (BertModel or any BertFor*)."""
  plan = convert.ParamPlan()
  for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
    plan.table((name,), f"embeddings.{name}")
  plan.norm(("embeddings_layer_norm",), "embeddings.LayerNorm")
  for index in range(config.num_hidden_layers):
    layer, torch_layer = f"layers_{index}", f"encoder.layer.{index}"
    for name in ("query", "key", "value"):
      plan.dense((layer, name), f"{torch_layer}.attention.self.{name}")
    plan.dense((layer, "attention_output"), f"{torch_layer}.attention.output.dense")
    plan.norm((layer, "attention_layer_norm"), f"{torch_layer}.attention.output.LayerNorm")
    plan.dense((layer, "intermediate"), f"{torch_layer}.intermediate.dense")
    plan.dense((layer, "output"), f"{torch_layer}.output.dense")
    plan.norm((layer, "output_layer_norm"), f"{torch_layer}.output.LayerNorm")
  ids = jax.ShapeDtypeStruct((1, 4), jnp.int32)
  expected = jax.eval_shape(BertEncoder(config).init, jax.random.key(0), ids, ids)["params"]
  return plan.build(convert.backbone_of(state_dict, "bert.", _HEAD_PREFIXES), expected)


def load_bert(folder) -> tuple[BertConfig, dict]:
  """(config, params) for `BertEncoder` from a Hugging Face BERT folder."""
  state_dict = convert.load_hf_state_dict(folder)  # first: a missing folder gets the how-to-download error
  config = BertConfig.from_hf_json(Path(folder) / "config.json")
  return config, bert_params_from_hf(state_dict, config)
