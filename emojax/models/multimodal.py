"""End-to-end fusion: the modality encoders and a fusion head in one model.

    face_image      -> face encoder   (DeepCNN | ResidualAttentionCNN)  -> embedding, logits (Ekman-7) --+
    speech_features -> speech encoder (Conformer | SpeechCNNLSTM | ...) -> embedding, logits (Ekman-7) --+-> fusion
    text_input_ids  -> text encoder   (MiniLM | DeBERTa classifier)     -> embedding, logits (Ekman-7) --+   head

Each encoder is any registered model, built from its own model config (`encoders.<m>`), reading the batch
keys prefixed `<m>_` (`face_image` -> its `image`). Its logits reach the shared Ekman-7 space through
`label_maps.<m>` (from the data: identity, or GoEmotions' 28 labels grouped into Ekman), so the decision-level
fusion methods read distributions over the same classes. The fusion head is any `fusion.*` model.

Training modes (`configs/multimodal.py`):
* frozen (`freeze_encoders=True`): encoders restored from their runs' best checkpoints (`checkpoints.<m>`),
  run in inference mode (batch-norm running statistics, no dropout), no gradient: only the fusion head learns.
  Equivalent to fusion on the runs' exports, but from raw inputs.
* end-to-end (`freeze_encoders=False`): the same start, every parameter trained through the fused loss
  (plus per-modality auxiliary losses if the fusion head has them), the encoders at
  `encoder_learning_rate_scale` times the learning rate so the pretrained features are adapted, not erased.
An encoder with no checkpoint starts from its own pretrained weights if it has any (a text encoder's
Hugging Face folder), else from scratch (the synthetic demo).
"""

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


def _plain(tree):
  """Flax freezes dict attributes; the model registry wants plain (nested) dicts."""
  return {k: _plain(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def _build(config, num_classes: int, **extra) -> nn.Module:
  from emojax.models import get_model
  return get_model(ml_collections.ConfigDict(_plain(config)), num_classes, **extra)


def _num_encoder_classes(label_map) -> int:
  return len(label_map) if label_map not in (None, "sigmoid") else 7


def to_ekman_logits(logits, label_map):
  """An encoder's logits as Ekman-7 log-probabilities (None: single-label Ekman-7 already, used as is)."""
  if label_map is None:
    return logits.astype(jnp.float32)
  from emojax.data.multimodal import ekman_log_probabilities
  matrix = None if label_map == "sigmoid" else np.asarray(label_map)
  return ekman_log_probabilities(logits.astype(jnp.float32), matrix, xp=jnp)


@functools.cache
def restore_encoder(run: str) -> dict:
  """{"params", "batch_stats"} of a training run's best checkpoint (`<run>/best/<step>`), as saved, on the host
  (numpy: a cached device array would be donated, and deleted, by the first training step)."""
  import orbax.checkpoint as ocp
  directory = Path(run).expanduser().absolute() / "best"
  manager = ocp.CheckpointManager(directory, item_names=("state", "metrics"))
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"No best checkpoint under {directory}: train that encoder first "
                            f"(python -m emojax.main --config <its config> --workdir {run}).")
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
  manager.close()
  return jax.device_get({"params": state["params"], "batch_stats": state.get("batch_stats", {})})


def _replace_matching(current: dict, restored: dict, what: str) -> dict:
  shapes = lambda tree: jax.tree.map(lambda x: tuple(np.shape(x)), tree)
  if shapes(current) != shapes(restored):
    raise ValueError(f"The checkpoint of {what} does not fit the encoder built from config.model.encoders: "
                     "the encoder config must be the run's own (configs/multimodal.py copies it from the "
                     "run's config.json).")
  return jax.tree.map(lambda c, r: np.asarray(r, c.dtype), current, restored)


class EncoderFusion(nn.Module):
  num_classes: int
  encoders: Any                        # {modality: encoder model config (name + fields)}, in fusion order
  fusion: Any                          # fusion head config: {"name": "fusion.gat", "graph": "full", ...}
  label_maps: Any = None               # {modality: None | "sigmoid" | [K, 7] grouping}, from the data
  checkpoints: Any = None              # {modality: encoder run to restore ("" = its own init)}
  freeze_encoders: bool = True
  encoder_learning_rate_scale: float = 0.1

  def _encoder(self, modality: str, **extra) -> nn.Module:
    label_map = (self.label_maps or {}).get(modality)
    return _build(self.encoders[modality], _num_encoder_classes(label_map), **extra)

  @nn.compact
  def __call__(self, batch, train: bool = False):
    modalities = tuple(self.encoders)
    fusion_batch = {"present": batch["present"]}
    encoder_train = train and not self.freeze_encoders
    for m in modalities:
      inputs = {key[len(m) + 1:]: value for key, value in batch.items() if key.startswith(f"{m}_")}
      outputs = self._encoder(m, name=f"{m}_encoder")(inputs, train=encoder_train)
      if self.freeze_encoders:
        outputs = jax.lax.stop_gradient(outputs)
      fusion_batch[f"{m}_embedding"] = outputs["embedding"].astype(jnp.float32)
      fusion_batch[f"{m}_logits"] = to_ekman_logits(outputs["logits"], (self.label_maps or {}).get(m))
      if "confidence" in outputs:
        fusion_batch[f"{m}_confidence"] = outputs["confidence"]
    head = _build(self.fusion, self.num_classes, modalities=modalities, name="fusion")
    fused = dict(head(fusion_batch, train=train))
    fused["modality_probabilities"] = jnp.stack(
        [jax.nn.softmax(fusion_batch[f"{m}_logits"], -1) for m in modalities], 1)  # [B, M, 7], for analysis
    return fused

  # -- hooks of the trainer (emojax.train) ----------------------------------------------------------
  @nn.nowrap
  def frozen_parameters(self, path: str) -> bool:
    """Every encoder parameter when the encoders are frozen; otherwise what an encoder freezes itself (e.g. a
    text encoder's word embeddings)."""
    modality, inner = self._owner(path)
    if modality is None:
      return False
    if self.freeze_encoders:
      return True
    encoder = self._encoder(modality, parent=None)  # unbound: only its own hook is asked
    return hasattr(encoder, "frozen_parameters") and encoder.frozen_parameters(inner)

  @nn.nowrap
  def learning_rate_scale(self, path: str) -> float:
    """`encoder_learning_rate_scale` for the encoders' parameters, 1 for the fusion head's."""
    return self.encoder_learning_rate_scale if self._owner(path)[0] is not None else 1.0

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
        params[f"{m}_encoder"] = _replace_matching(params[f"{m}_encoder"], restore_encoder(run)["params"],
                                                   f"{m} ({run})")
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
            batch_stats[f"{m}_encoder"], restore_encoder(run)["batch_stats"], f"{m} ({run}) batch statistics")
    return batch_stats
