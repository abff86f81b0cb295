"""End-to-end fusion: the modality encoders and a fusion head in one model.

    face_image      -> face encoder   (DeepCNN | ResidualAttentionCNN)  -> embedding, logits (Ekman-7) --+
    speech_features -> speech encoder (Conformer | SpeechCNNLSTM | ...) -> embedding, logits (Ekman-7) --+-> fusion
    text_input_ids  -> text encoder   (MiniLM | DeBERTa classifier)     -> embedding, logits (Ekman-7) --+   head

Each encoder is any registered model, built from its own model config (`encoders.<m>`), reading the batch
keys prefixed `<m>_` (`face_image` -> its `image`). Its logits reach the shared Ekman-7 space through
`label_maps.<m>` (from the data: identity, or GoEmotions' 28 labels grouped into Ekman), so the decision-level
fusion methods read distributions over the same classes. The fusion head is any `fusion.*` model.

On truly aligned sets (`configs/aligned.py`, `data/aligned.py`) every encoder predicts the set's own classes
(RAVDESS 8 or Ekman-7, MOSI negative / positive: no label map), `encoder_kwargs.<m>` brings what the data tells an
encoder (the training split's feature statistics), and an encoder may be a run's export (`features.exported`).

Training modes (`configs/multimodal.py`):
* frozen (`freeze_encoders=True`): encoders restored from their runs' best checkpoints (`checkpoints.<m>`),
  run in inference mode (batch-norm running statistics, no dropout), no gradient: only the fusion head learns.
  Equivalent to fusion on the runs' exports, but from raw inputs.
* end-to-end (`freeze_encoders=False`): the same start, every parameter trained through the fused loss
  (plus per-modality auxiliary losses if the fusion head has them), the encoders at
  `encoder_learning_rate_scale` times the learning rate so the pretrained features are adapted, not erased.
* mixed: `freeze_encoders` names the frozen modalities, and `encoder_learning_rate_scale` may be per modality
  (a pretrained Conformer frozen or at 0.1x beside a feature MLP trained from scratch at the full rate).
An encoder with no checkpoint starts from its own pretrained weights if it has any (a text encoder's
Hugging Face folder), else from scratch (the synthetic demo, the feature MLPs of aligned sets). A checkpoint may
also be a fusion run that holds the encoder (`<m>_encoder`: a single-modality aligned run).
"""

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from emojax import labels as labels_lib


def _plain(tree):
  """Flax freezes dict attributes; the model registry wants plain (nested) dicts."""
  return {k: _plain(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def build_module(config, num_classes: int, **extra) -> nn.Module:
  """A registered model (an encoder, a fusion head) from its model config, e.g. `{"name": "features.mlp", ...}`."""
  from emojax.models import get_model

  return get_model(ml_collections.ConfigDict(_plain(config)), num_classes, **extra)


def to_ekman_logits(logits, label_map):
  """An encoder's logits as Ekman-7 log-probabilities (None: single-label Ekman-7 already, used as is)."""
  if label_map is None:
    return logits.astype(jnp.float32)
  matrix = None if label_map == "sigmoid" else np.asarray(label_map)
  return labels_lib.ekman_log_probabilities(logits.astype(jnp.float32), matrix, xp=jnp)


@functools.cache
def restore_encoder(run: str) -> dict:
  """{"params", "batch_stats"} of a training run's best checkpoint (`<run>/best/<step>`), on the host."""
  from emojax import checkpoint

  return checkpoint.restore_variables(run, "best")[0]


def encoder_variables(run: str, modality: str, collection: str) -> dict:
  """The `collection` of modality's encoder in `run`: the run's whole model, or, for a fusion run that holds the
  encoder (a single-modality aligned run, `<modality>_encoder`), that part of it."""
  variables = restore_encoder(run)[collection]
  return variables.get(f"{modality}_encoder", variables) if isinstance(variables, Mapping) else variables


def _replace_matching(current: dict, restored: dict, what: str) -> dict:
  shapes = lambda tree: jax.tree.map(lambda x: tuple(np.shape(x)), tree)
  if shapes(current) != shapes(restored):
    raise ValueError(
      f"The checkpoint of {what} does not fit the encoder built from config.model.encoders: "
      "the encoder config must be the run's own (configs/multimodal.py copies it from the "
      "run's config.json)."
    )
  return jax.tree.map(lambda c, r: np.asarray(r, c.dtype), current, restored)


class EncoderFusion(nn.Module):
  num_classes: int
  encoders: Any  # {modality: encoder model config (name + fields)}, in fusion order
  fusion: Any  # fusion head config: {"name": "fusion.gat", "graph": "full", ...}
  label_maps: Any = None  # {modality: None | "sigmoid" | [K, 7] grouping}, from the data
  modalities: Any = None  # the order of the data's `present` columns; None: the encoders' keys (a
  # ConfigDict lists them sorted, as the label-matched tuples order them)
  encoder_kwargs: Any = None  # {modality: extra encoder fields from the data (training-split statistics)}
  checkpoints: Any = None  # {modality: encoder run to restore ("" = its own init)}
  freeze_encoders: Any = True  # True | False | the modalities whose encoders are frozen
  encoder_learning_rate_scale: Any = 0.1  # for every encoder, or {modality: scale}

  def _encoder(self, modality: str, **extra) -> nn.Module:
    label_map = (self.label_maps or {}).get(modality)
    # An encoder of the fusion's own classes (None: aligned data, or an Ekman-7 encoder of Ekman-7 tuples), or of
    # its K multi-label classes grouped into Ekman-7 ("sigmoid": multi-label over Ekman-7 itself).
    classes = self.num_classes if label_map is None else 7 if label_map == "sigmoid" else len(label_map)
    data_fields = dict((self.encoder_kwargs or {}).get(modality, {}))
    return build_module(self.encoders[modality], classes, **data_fields, **extra)

  @nn.nowrap
  def _frozen(self, modality: str) -> bool:
    if isinstance(self.freeze_encoders, bool):
      return self.freeze_encoders
    unknown = set(self.freeze_encoders) - set(self.encoders)
    if unknown:
      raise ValueError(f"config.model.freeze_encoders names {sorted(unknown)}; the encoders are {list(self.encoders)}.")
    return modality in self.freeze_encoders

  @nn.compact
  def __call__(self, batch, train: bool = False):
    modalities = tuple(self.modalities or self.encoders)
    if set(modalities) != set(self.encoders):
      raise ValueError(f"config.model.modalities={modalities} must name the encoders {sorted(self.encoders)}.")
    fusion_batch = {"present": batch["present"]}
    for m in modalities:
      inputs = {key[len(m) + 1 :]: value for key, value in batch.items() if key.startswith(f"{m}_")}
      outputs = self._encoder(m, name=f"{m}_encoder")(inputs, train=train and not self._frozen(m))
      if self._frozen(m):
        outputs = jax.lax.stop_gradient(outputs)
      fusion_batch[f"{m}_embedding"] = outputs["embedding"].astype(jnp.float32)
      fusion_batch[f"{m}_logits"] = to_ekman_logits(outputs["logits"], (self.label_maps or {}).get(m))
      if "confidence" in outputs:
        fusion_batch[f"{m}_confidence"] = outputs["confidence"]
    head = build_module(self.fusion, self.num_classes, modalities=modalities, name="fusion")
    fused = dict(head(fusion_batch, train=train))
    fused["modality_probabilities"] = jnp.stack(
      [jax.nn.softmax(fusion_batch[f"{m}_logits"], -1) for m in modalities], 1
    )  # [B, M, 7], for analysis
    return fused

  # -- hooks of the trainer (emojax.train) ----------------------------------------------------------
  @nn.nowrap
  def frozen_parameters(self, path: str) -> bool:
    """Every encoder parameter when the encoders are frozen; otherwise what an encoder freezes itself (e.g. a
    text encoder's word embeddings)."""
    modality, inner = self._owner(path)
    if modality is None:
      return False
    if self._frozen(modality):
      return True
    encoder = self._encoder(modality, parent=None)  # unbound: only its own hook is asked
    return hasattr(encoder, "frozen_parameters") and encoder.frozen_parameters(inner)

  @nn.nowrap
  def learning_rate_scale(self, path: str) -> float:
    """`encoder_learning_rate_scale` (that modality's, if it is a mapping) for the encoders' parameters, 1 for the
    fusion head's."""
    modality = self._owner(path)[0]
    if modality is None:
      return 1.0
    scale = self.encoder_learning_rate_scale
    return float(scale.get(modality, 1.0)) if isinstance(scale, Mapping) else float(scale)

  @nn.nowrap
  def _owner(self, path: str):
    """(modality, path inside its encoder) for an encoder's parameter, (None, path) for the fusion head's."""
    top, _, inner = path.partition("/")
    modality = top.removesuffix("_encoder")
    return (modality, inner) if top.endswith("_encoder") and modality in self.encoders else (None, path)

  @nn.nowrap
  def load_pretrained(self, params: dict) -> dict:
    params = dict(params)
    for m in self.encoders:
      run = (self.checkpoints or {}).get(m, "")
      if run:
        params[f"{m}_encoder"] = _replace_matching(
          params[f"{m}_encoder"], encoder_variables(run, m, "params"), f"{m} ({run})"
        )
      elif hasattr(encoder := self._encoder(m, parent=None), "load_pretrained"):
        params[f"{m}_encoder"] = encoder.load_pretrained(params[f"{m}_encoder"])
    return params

  @nn.nowrap
  def load_pretrained_batch_stats(self, batch_stats: dict) -> dict:
    batch_stats = dict(batch_stats)
    for m in self.encoders:
      run = (self.checkpoints or {}).get(m, "")
      if run and f"{m}_encoder" in batch_stats:
        batch_stats[f"{m}_encoder"] = _replace_matching(
          batch_stats[f"{m}_encoder"], encoder_variables(run, m, "batch_stats"), f"{m} ({run}) batch statistics"
        )
    return batch_stats
