"""Speech emotion models. Each takes a dict batch and returns logits and an utterance embedding.

Frame-feature models read `features` [B, T, D] with `num_frames` [B]; waveform models read `audio`
[B, S] with `length` [B] (16 kHz samples). If the batch carries eGeMAPS `functionals` [B, 88], they
are batch-normalised and joined to the embedding before the classifier.
"""

import functools
import logging
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from emojax.models import wav2vec2 as wav2vec2_lib
from emojax.models import whisper as whisper_lib
from emojax.models.layers import (
  AttentionPooling,
  ConformerBlock,
  ConvBatchNormReLU,
  length_mask,
  masked_mean,
  max_pool_2x2,
)


def normalized_features(batch, train: bool, dtype):
  """`features` standardised per dimension with running statistics of the training frames.

  A batch norm without scale or offset, over real frames only (padding is masked out of the
  statistics and zeroed): global feature standardisation learned while training, so absolute
  levels (loudness, spectral tilt) stay informative, unlike per-utterance normalisation.
  """
  features = batch["features"].astype(jnp.float32)
  mask = length_mask(batch["num_frames"], features.shape[1])[..., None]
  normalized = nn.BatchNorm(
    use_running_average=not train, momentum=0.9, use_scale=False, use_bias=False, name="input_norm"
  )(features, mask=mask)
  return jnp.where(mask, normalized, 0.0).astype(dtype)


def _head(embedding, batch, num_classes: int, dropout: float, train: bool, dtype):
  if "functionals" in batch:
    functionals = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="functionals_norm")(
      batch["functionals"].astype(jnp.float32)
    )
    embedding = jnp.concatenate([embedding, functionals.astype(embedding.dtype)], axis=-1)
  features = nn.Dropout(dropout, deterministic=not train)(embedding)
  logits = nn.Dense(num_classes, dtype=dtype, name="classifier")(features)
  return {"logits": logits.astype(jnp.float32), "embedding": embedding.astype(jnp.float32)}


class SpeechCNNLSTM(nn.Module):
  """Conv front end over the (log-mel) spectrogram, a (Bi)LSTM over time, attention pooling.

  Each conv block (3x3 conv, batch norm, ReLU, 2x2 max pool) halves time and frequency; the
  frequency and channel axes are then flattened per frame and projected to the LSTM width.
  """

  num_classes: int
  conv_features: Sequence[int] = (16, 32, 64)
  lstm_features: int = 128
  bidirectional: bool = True
  dropout: float = 0.3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    x = normalized_features(batch, train, self.dtype)[..., None]  # [B, T, D, 1]
    frames = jnp.asarray(batch["num_frames"])
    for features in self.conv_features:
      x = ConvBatchNormReLU(features, dtype=self.dtype)(x, train)
      x = max_pool_2x2(x)
      frames = frames // 2
    x = x.reshape(x.shape[0], x.shape[1], -1)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.lstm_features, dtype=self.dtype, name="project")(x)
    frames = jnp.maximum(frames, 1)
    forward = nn.RNN(nn.OptimizedLSTMCell(self.lstm_features, dtype=self.dtype), name="lstm_forward")
    if self.bidirectional:
      backward = nn.RNN(nn.OptimizedLSTMCell(self.lstm_features, dtype=self.dtype), name="lstm_backward")
      x = nn.Bidirectional(forward, backward)(x, seq_lengths=frames)
    else:
      x = forward(x, seq_lengths=frames)
    embedding, weights = AttentionPooling(dtype=self.dtype)(x, length_mask(frames, x.shape[1]))
    out = _head(embedding, batch, self.num_classes, self.dropout, train, self.dtype)
    out["frame_attention"] = weights
    return out


class Conformer(nn.Module):
  """Conformer encoder (Gulati et al., 2020) over log-mel frames or over wav2vec 2.0 features.

  `frontend="features"`: two 3x3 stride-2 convolutions subsample time (and frequency) by 4, then a
  linear layer maps to `model_dim`. `frontend="wav2vec2"`: a wav2vec 2.0 encoder (20 ms frames,
  pretrained from `wav2vec2_path`, frozen by default) whose hidden states are mixed with learned
  softmax layer weights and projected to `model_dim`. Then `num_layers` Conformer blocks and
  attention pooling over time.
  """

  num_classes: int
  frontend: str = "features"
  model_dim: int = 96
  num_layers: int = 4
  num_heads: int = 4
  ff_multiplier: int = 4
  conv_kernel_size: int = 15
  subsampling_features: int = 32
  dropout: float = 0.1
  wav2vec2_path: str = ""
  wav2vec2_config: Any = None  # a dict of Wav2Vec2Config fields, for a randomly initialised encoder
  freeze_feature_encoder: bool = True
  num_frozen_layers: int = -1  # -1: the whole wav2vec 2.0 encoder is frozen
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    if self.frontend == "features":
      x = normalized_features(batch, train, self.dtype)[..., None]
      frames = jnp.asarray(batch["num_frames"])
      for index in range(2):
        x = nn.relu(nn.Conv(self.subsampling_features, (3, 3), (2, 2), dtype=self.dtype, name=f"subsample_{index}")(x))
        frames = (frames + 1) // 2
      x = x.reshape(x.shape[0], x.shape[1], -1)
      mask = length_mask(frames, x.shape[1])
    elif self.frontend == "wav2vec2":
      x, mask = Wav2Vec2Features(
        self.wav2vec2_path,
        self.wav2vec2_config,
        self.freeze_feature_encoder,
        self.num_frozen_layers,
        self.dtype,
        name="wav2vec2_features",
      )(batch, train)
    else:
      raise ValueError(f"config.model.frontend={self.frontend!r}; expected 'features' or 'wav2vec2'.")
    x = nn.Dense(self.model_dim, dtype=self.dtype, name="input_projection")(x)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    for index in range(self.num_layers):
      x = ConformerBlock(
        self.num_heads, self.ff_multiplier, self.conv_kernel_size, self.dropout, self.dtype, name=f"block_{index}"
      )(x, mask, train)
    embedding, weights = AttentionPooling(dtype=self.dtype)(x, mask)
    out = _head(embedding, batch, self.num_classes, self.dropout, train, self.dtype)
    out["frame_attention"] = weights
    return out

  @nn.nowrap  # plain helpers called on the unbound module, outside init/apply
  def frozen_parameters(self, path: str) -> bool:
    return self.frontend == "wav2vec2" and wav2vec2_frozen(self, path)

  @nn.nowrap
  def load_pretrained(self, params: dict) -> dict:
    return with_pretrained_wav2vec2(self, params) if self.frontend == "wav2vec2" else params


class Wav2Vec2Classifier(nn.Module):
  """wav2vec 2.0 encoder, layer-weighted sum of its hidden states (SUPERB style), masked pooling, head.

  `pooling="layer_weighted"` learns softmax weights over all hidden states, `"last"` uses the final
  one. Freezing (`freeze_feature_encoder`, `num_frozen_layers`, -1 = all layers) makes a linear probe
  or a partial fine-tune from the config.
  """

  num_classes: int
  wav2vec2_path: str = ""
  wav2vec2_config: Any = None
  pooling: str = "layer_weighted"
  head_features: int = 256
  freeze_feature_encoder: bool = True
  num_frozen_layers: int = 0
  dropout: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    if self.pooling not in ("layer_weighted", "last"):
      raise ValueError(f"config.model.pooling={self.pooling!r}; expected 'layer_weighted' or 'last'.")
    x, mask = Wav2Vec2Features(
      self.wav2vec2_path,
      self.wav2vec2_config,
      self.freeze_feature_encoder,
      self.num_frozen_layers,
      self.dtype,
      self.pooling == "layer_weighted",
      name="wav2vec2_features",
    )(batch, train)
    x = nn.relu(nn.Dense(self.head_features, dtype=self.dtype, name="projection")(x))
    embedding = masked_mean(x, mask)
    return _head(embedding, batch, self.num_classes, self.dropout, train, self.dtype)

  @nn.nowrap
  def frozen_parameters(self, path: str) -> bool:
    return wav2vec2_frozen(self, path)

  @nn.nowrap
  def load_pretrained(self, params: dict) -> dict:
    return with_pretrained_wav2vec2(self, params)


# ----------------------------------------------------------------------------------------------
# wav2vec 2.0 plumbing shared by the two models above.
# ----------------------------------------------------------------------------------------------
ENCODER_PATH = ("wav2vec2_features", "encoder")  # where both models keep the encoder's parameters


@functools.lru_cache(maxsize=8)
def _config_from_json(path: str) -> wav2vec2_lib.Wav2Vec2Config:
  return wav2vec2_lib.Wav2Vec2Config.from_hf_json(f"{path}/config.json")


def wav2vec2_config(path: str, overrides) -> wav2vec2_lib.Wav2Vec2Config:
  """The encoder's architecture: `<path>/config.json` if a path is given, else defaults + overrides."""
  return _config_from_json(path) if path else wav2vec2_lib.Wav2Vec2Config(**dict(overrides or {}))


def _frozen_layers(config, num_frozen_layers: int) -> int:
  return config.num_hidden_layers if num_frozen_layers < 0 else num_frozen_layers


def wav2vec2_frozen(model, path: str) -> bool:
  """Whether `model`'s parameter at `path` lies in a frozen part of its wav2vec 2.0 encoder."""
  prefix = "/".join(ENCODER_PATH) + "/"
  if not path.startswith(prefix):
    return False
  config = wav2vec2_config(model.wav2vec2_path, model.wav2vec2_config)
  return wav2vec2_lib.is_frozen_parameter(
    path[len(prefix) :], config, model.freeze_feature_encoder, _frozen_layers(config, model.num_frozen_layers)
  )


def with_pretrained_wav2vec2(model, params: dict) -> dict:
  """`params` with the encoder's subtree replaced by the checkpoint at `model.wav2vec2_path`."""
  if not model.wav2vec2_path:
    logging.warning("No config.model.wav2vec2_path: the wav2vec 2.0 encoder starts from random weights.")
    return params
  _, pretrained = wav2vec2_lib.load_wav2vec2(model.wav2vec2_path)
  outer, inner = ENCODER_PATH
  params = {**params, outer: {**params[outer], inner: pretrained}}
  logging.info(
    "Loaded wav2vec 2.0 weights from %s (%d parameters).",
    model.wav2vec2_path,
    sum(np.size(p) for p in jax.tree.leaves(pretrained)),
  )
  return params


class Wav2Vec2Features(nn.Module):
  """Runs the encoder on `audio`; returns ([B, T, H] mixed hidden states, [B, T] bool frame mask).

  Each clip is first scaled to zero mean and unit variance over its real samples, as Hugging Face's
  feature extractor does for the released checkpoints (`do_normalize`). The valid lengths are passed
  on, so padding is masked out of attention even for group-norm checkpoints (HF leaves it in there).
  """

  wav2vec2_path: str = ""
  wav2vec2_config: Any = None
  freeze_feature_encoder: bool = True
  num_frozen_layers: int = 0
  dtype: Any = jnp.float32
  layer_weighted: bool = True

  @nn.compact
  def __call__(self, batch, train: bool):
    config = wav2vec2_config(self.wav2vec2_path, self.wav2vec2_config)
    encoder = wav2vec2_lib.Wav2Vec2Encoder(
      config, self.dtype, self.freeze_feature_encoder, _frozen_layers(config, self.num_frozen_layers), name="encoder"
    )
    audio = batch["audio"].astype(jnp.float32)
    lengths = batch.get("length", jnp.full(audio.shape[:1], audio.shape[1]))
    valid = length_mask(lengths, audio.shape[1])
    mean = masked_mean(audio[..., None], valid)
    variance = masked_mean(jnp.square(audio - mean)[..., None], valid)
    audio = jnp.where(valid, (audio - mean) / jnp.sqrt(variance + 1e-7), 0.0)
    out = encoder(audio, lengths, train)
    mask = out["frame_mask"] > 0
    if not self.layer_weighted:
      return out["last_hidden_state"], mask
    # The last entry is the encoder output (after the pre-LN variant's final norm), as SUPERB uses.
    states = jnp.stack(out["hidden_states"][:-1] + (out["last_hidden_state"],), axis=0)
    layer_weights = nn.softmax(self.param("layer_weights", nn.initializers.zeros, (states.shape[0],)))
    return jnp.einsum("l,lbtd->btd", layer_weights.astype(states.dtype), states), mask


# ----------------------------------------------------------------------------------------------
# Whisper: a pretrained encoder, frozen or fine-tuned at the top, over summaries the reader caches.
# ----------------------------------------------------------------------------------------------
def _mean_and_deviation(x, mask):
  """[B, T, D] -> [B, 2 D]: mean and standard deviation over the real frames of `mask` [B, T]."""
  mean = masked_mean(x, mask)
  deviation = jnp.sqrt(masked_mean(jnp.square(x - mean[:, None]), mask) + 1e-6)
  return jnp.concatenate([mean, deviation], axis=-1)


class WhisperClassifier(nn.Module):
  """Whisper's encoder as a pretrained speech-emotion front end: layer-weighted statistics of its hidden states.

  The frozen encoder runs once per clip in the reader (`data/whisper_features.py`, cached), which keeps per hidden
  state the mean and standard deviation over the clip's positions (`whisper_summary` [B, L + 1, 2H]). Each is
  standardised with running statistics of the training clips, the layers are mixed with learned softmax weights
  (SUPERB style), projected (`head_features`, ReLU) and classified. With `trainable_layers` = n > 0 the reader also
  keeps the frames entering the top n layers (`whisper_frames`, `config.data.features.whisper_top_layers` = n,
  summaries then only of the frozen states below) and those n layers and the final layer norm run here from
  Whisper's weights (`load_pretrained`), fine-tuned at `encoder_learning_rate_scale` times the head's rate.
  `frame_statistics` adds the mean and deviation of the frame features (log-mel, prosody when configured), and
  eGeMAPS `functionals` join the embedding as in every speech model.
  """

  num_classes: int
  whisper_path: str = ""  # a CTranslate2 Whisper folder; "" = the installed Whisper base
  trainable_layers: int = 0
  head_features: int = 256
  dropout: float = 0.2
  encoder_dropout: float = 0.1
  encoder_learning_rate_scale: float = 0.1
  frame_statistics: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, train: bool = False):
    if "whisper_summary" not in batch:
      raise ValueError(
        "WhisperClassifier reads `whisper_summary`: set config.data.features.whisper='clip' (or "
        "'30s'), as configs/speech.py:model=whisper does."
      )
    summary = batch["whisper_summary"].astype(jnp.float32)
    if self.trainable_layers:
      config = _whisper_config(self.whisper_path)
      first = config.num_layers - self.trainable_layers
      if "whisper_frames" not in batch or summary.shape[1] != first + 1:
        raise ValueError(
          f"config.model.trainable_layers={self.trainable_layers} needs the frames entering layer "
          f"{first}: set config.data.features.whisper_top_layers={self.trainable_layers} (the batch has "
          f"{summary.shape[1]} frozen summaries and "
          f"{'' if 'whisper_frames' in batch else 'no '}frames)."
        )
      mask = length_mask(batch["whisper_num_frames"], batch["whisper_frames"].shape[1])
      states = whisper_lib.WhisperTopLayers(config, first, self.encoder_dropout, self.dtype, name="top_layers")(
        batch["whisper_frames"].astype(jnp.float32), mask, train
      )
      summary = jnp.concatenate(
        [summary] + [_mean_and_deviation(s.astype(jnp.float32), mask)[:, None] for s in states], axis=1
      )
    summary = nn.BatchNorm(
      use_running_average=not train, momentum=0.9, axis=(1, 2), use_scale=False, use_bias=False, name="summary_norm"
    )(summary)
    layer_weights = nn.softmax(self.param("layer_weights", nn.initializers.zeros, (summary.shape[1],)))
    x = jnp.einsum("l,bld->bd", layer_weights, summary)
    if self.frame_statistics:
      frames = normalized_features(batch, train, jnp.float32)
      x = jnp.concatenate([x, _mean_and_deviation(frames, length_mask(batch["num_frames"], frames.shape[1]))], -1)
    x = nn.Dropout(self.dropout, deterministic=not train)(x.astype(self.dtype))
    x = nn.relu(nn.Dense(self.head_features, dtype=self.dtype, name="projection")(x))
    out = _head(x, batch, self.num_classes, self.dropout, train, self.dtype)
    out["layer_weights"] = jnp.broadcast_to(layer_weights, (x.shape[0], layer_weights.shape[0]))
    return out

  @nn.nowrap
  def learning_rate_scale(self, path: str) -> float:
    return self.encoder_learning_rate_scale if path.startswith("top_layers/") else 1.0

  @nn.nowrap
  def load_pretrained(self, params: dict) -> dict:
    """`params` with the fine-tuned top layers set to Whisper's own weights (nothing to load when frozen)."""
    if not self.trainable_layers:
      return params
    config, pretrained = whisper_lib.load_whisper_encoder(self.whisper_path)
    top = whisper_lib.top_layer_params(pretrained, config.num_layers - self.trainable_layers)
    jax.tree.map(lambda want, got: None, params["top_layers"], top)  # same structure, or an error naming it
    logging.info(
      "Loaded Whisper's top %d encoder layers (%d parameters).",
      self.trainable_layers,
      sum(np.size(p) for p in jax.tree.leaves(top)),
    )
    return {**params, "top_layers": top}


@functools.lru_cache(maxsize=4)
def _whisper_config(path: str) -> whisper_lib.WhisperEncoderConfig:
  return whisper_lib.load_whisper_encoder(path)[0]
