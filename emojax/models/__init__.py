"""Models by name: `config.model.name = "face.deep_cnn"` -> `emojax.models.face.DeepCNN`.

Every model is a Flax linen module called as `model.apply(variables, batch, train=...)` on a dict
batch, returning a dict with `logits` [B, num_classes] and `embedding` [B, D] (the features before
the classifier, for fusion), plus named extras such as `confidence`.
"""

import importlib

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

REGISTRY = {
  "face.deep_cnn": "emojax.models.face:DeepCNN",
  "face.residual_attention_cnn": "emojax.models.face:ResidualAttentionCNN",
  "face.cnn_bilstm": "emojax.models.face:CNNBiLSTM",
  "face.landmark_gat": "emojax.models.landmark_graph:LandmarkGAT",
  "speech.cnn_lstm": "emojax.models.speech:SpeechCNNLSTM",
  "speech.conformer": "emojax.models.speech:Conformer",
  "speech.wav2vec2": "emojax.models.speech:Wav2Vec2Classifier",
  "speech.whisper": "emojax.models.speech:WhisperClassifier",
  "text.classifier": "emojax.models.text:TextClassifier",
  "fusion.gat": "emojax.models.fusion:GATFusion",
  "fusion.concat": "emojax.models.fusion:ConcatFusion",
  "fusion.confidence_weighted": "emojax.models.fusion:ConfidenceWeightedFusion",
  "fusion.mean": "emojax.models.fusion:MeanEnsemble",
  "fusion.end_to_end": "emojax.models.multimodal:EncoderFusion",
  "fusion.context_gat": "emojax.models.context_graph:UtteranceContextGAT",
  "features.mlp": "emojax.models.feature_encoders:FeatureMLP",
  "features.exported": "emojax.models.feature_encoders:ExportedEncoder",
}


def get_model(config: ml_collections.ConfigDict, num_classes: int, **extra) -> nn.Module:
  """Builds `config.model.name` with the rest of `config.model` (and `extra`) as keyword arguments."""
  if config.name not in REGISTRY:
    raise ValueError(f"config.model.name={config.name!r} is not a registered model; choose one of {sorted(REGISTRY)}.")
  module_name, class_name = REGISTRY[config.name].split(":")
  cls = getattr(importlib.import_module(module_name), class_name)
  kwargs = {**{k: v for k, v in config.to_dict().items() if k != "name"}, **extra}
  if "dtype" in kwargs:
    kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
  try:
    return cls(num_classes=num_classes, **kwargs)
  except TypeError as error:
    raise ValueError(f"config.model has a field {config.name} does not take: {error}") from error
