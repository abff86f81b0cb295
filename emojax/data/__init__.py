"""Dataset readers by name: `config.data.name` selects one, `config.data` configures it."""

import ml_collections

from emojax.data import quality
from emojax.data.base import Dataset

SPEECH_CORPORA = ("ravdess", "tess", "crema_d")  # emojax.data.speech.CORPORA; named here without librosa


def load_split(config: ml_collections.ConfigDict, split: str) -> Dataset:
  """Split `split` of `config` (= `config.data`), after its data-quality switches (`emojax.data.quality`)."""
  data = read_split(config, split)
  if quality.settings(config) != ("none", "none"):
    data = quality.apply(data, config, split, lambda other: read_split(config, other))
  return data


def read_split(config: ml_collections.ConfigDict, split: str) -> Dataset:
  """Split `split` as its reader returns it."""
  if config.name == "fer2013":
    from emojax.data import fer2013, landmarks
    data = fer2013.load(config.root, split, mark_train_duplicates=split != "train")
    return landmarks.attach(data, config, "fer2013", split) if config.get("landmark_cache") else data
  if config.name == "synthetic":
    from emojax.data import synthetic
    size = config.num_train_examples if split == "train" else config.num_eval_examples
    return synthetic.load(split, size, seed=config.seed)
  if config.name == "synthetic_clips":
    from emojax.data import synthetic
    size = config.num_train_examples if split == "train" else config.num_eval_examples
    return synthetic.load_clips(split, size, seed=config.seed, length=config.clip_length)
  if config.name == "clips":
    from emojax.data import clips
    return clips.load(config, split)
  if config.name in SPEECH_CORPORA:
    from emojax.data import speech
    return speech.load(config, split)
  if config.name == "multimodal":
    from emojax.data import multimodal
    return multimodal.load(config, split)
  if config.name == "multimodal_synthetic":
    from emojax.data import multimodal
    size = config.num_train_examples if split == "train" else config.num_eval_examples
    return multimodal.synthetic(split, size, seed=config.seed)
  if config.name == "multimodal_inputs":
    from emojax.data import multimodal
    return multimodal.load_inputs(config, split)
  if config.name == "multimodal_synthetic_inputs":
    from emojax.data import multimodal
    size = config.num_train_examples if split == "train" else config.num_eval_examples
    return multimodal.synthetic_inputs(split, size, seed=config.seed)
  if config.name in ("ravdess_av", "mosi", "multimodal_ravdess_av", "multimodal_mosi"):
    from emojax.data import aligned  # truly aligned sets: one moment in every modality
    return aligned.load(config, split)
  if config.name == "goemotions":
    from emojax.data import goemotions
    return goemotions.load_tokenized(config, split)
  if config.name == "labelled_text":
    from emojax.data import labelled_text
    return labelled_text.load(config, split)
  raise ValueError(f"config.data.name={config.name!r} is not a known dataset; use 'fer2013', 'synthetic', "
                   "'clips', 'synthetic_clips', 'ravdess', 'tess', 'crema_d', 'goemotions', 'multimodal', "
                   "'multimodal_synthetic', 'multimodal_inputs', 'multimodal_synthetic_inputs', 'labelled_text', "
                   "'ravdess_av', 'mosi', 'multimodal_ravdess_av' or 'multimodal_mosi'.")
