"""Dataset readers by name: `config.data.name` selects one, `config.data` configures it."""

import ml_collections
import numpy as np

from emojax import labels as labels_lib
from emojax.data import quality
from emojax.data.base import Dataset

SPEECH_CORPORA = ("ravdess", "tess", "crema_d")  # emojax.data.speech.CORPORA; named here without librosa
ALIGNED_SETS = ("ravdess_av", "mosi")  # one recording or utterance seen by every modality (data/aligned.py)


def load_split(config: ml_collections.ConfigDict, split: str) -> Dataset:
  """Split `split` of `config` (= `config.data`), after its data-quality switches (`emojax.data.quality`)."""
  data = read_split(config, split)
  if quality.settings(config) != ("none", "none"):
    data = quality.apply(data, config, split, lambda other: read_split(config, other))
  return data


def read_split(config: ml_collections.ConfigDict, split: str) -> Dataset:
  """Split `split` as its reader returns it."""
  name = config.name
  size = config.get("num_train_examples" if split == "train" else "num_eval_examples")  # the synthetic sets' sizes
  if name == "fer2013":
    from emojax.data import fer2013, landmarks

    data = fer2013.load(config.root, split, mark_train_duplicates=split != "train")
    return landmarks.attach(data, config, "fer2013", split) if config.get("landmark_cache") else data
  if name == "synthetic":
    from emojax.data import synthetic

    return synthetic.load(split, size, seed=config.seed)
  if name == "synthetic_clips":
    from emojax.data import synthetic

    return synthetic.load_clips(split, size, seed=config.seed, length=config.clip_length)
  if name == "clips":
    from emojax.data import clips

    return clips.load(config, split)
  if name in SPEECH_CORPORA:
    from emojax.data import speech

    return speech.load(config, split)
  if name == "goemotions":
    from emojax.data import goemotions

    return goemotions.load_tokenized(config, split)
  if name == "labelled_text":
    from emojax.data import labelled_text

    return labelled_text.load(config, split)
  if name.removeprefix("multimodal_") in ALIGNED_SETS:  # truly aligned sets: one moment in every modality
    reader = _aligned_reader(name)
    return reader.load(config, split) if name.startswith("multimodal_") else reader.load_modality(config, split)
  if name.startswith("multimodal"):  # label-matched fusion tuples
    from emojax.data import multimodal

    if name == "multimodal":
      return multimodal.load(config, split)
    if name == "multimodal_synthetic":
      return multimodal.synthetic(split, size, seed=config.seed)
    if name == "multimodal_inputs":
      return multimodal.load_inputs(config, split, read=load_split)
    if name == "multimodal_synthetic_inputs":
      return multimodal.synthetic_inputs(split, size, seed=config.seed)
  raise ValueError(
    f"config.data.name={name!r} is not a known dataset; use 'fer2013', 'synthetic', "
    "'clips', 'synthetic_clips', 'ravdess', 'tess', 'crema_d', 'goemotions', 'multimodal', "
    "'multimodal_synthetic', 'multimodal_inputs', 'multimodal_synthetic_inputs', 'labelled_text', "
    "'ravdess_av', 'mosi', 'multimodal_ravdess_av' or 'multimodal_mosi'."
  )


def _aligned_reader(name: str):
  """The reader module of an aligned set (`ravdess_av`, `mosi`), alone or with the prefix `multimodal_`."""
  if name.removeprefix("multimodal_") == "ravdess_av":
    from emojax.data import ravdess_av

    return ravdess_av
  from emojax.data import mosi

  return mosi


def label_space_of(data_config) -> labels_lib.LabelSpace:
  """The label space a run on `data_config` (= `config.data`) trains in, from the config and the corpus's label
  files alone (GoEmotions' emotions.txt and groupings): no example is read."""
  name = data_config.name
  if name == "goemotions":
    from emojax.data.goemotions import SENTIMENTS, LabelSpaces

    spaces = LabelSpaces(data_config.root)
    names = spaces.names(data_config.label_space)
    matrix = {"goemotions28": spaces.groupings["ekman"], "ekman": np.eye(len(labels_lib.EKMAN7)), "sentiment": None}[
      data_config.label_space
    ]
    return labels_lib.LabelSpace(names, True, None if matrix is None else np.asarray(matrix, np.float64), SENTIMENTS)
  if name in SPEECH_CORPORA:
    from emojax.data import speech

    return labels_lib.single_label_space(speech.class_names(data_config))
  if name.removeprefix("multimodal_") in ALIGNED_SETS:  # truly aligned sets keep their own classes
    return labels_lib.single_label_space(_aligned_reader(name).class_names(data_config))
  return labels_lib.single_label_space(
    labels_lib.EKMAN7
  )  # faces, clips, labelled text and fusion tuples are read into Ekman-7
