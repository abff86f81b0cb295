"""The corpora `emojax explore` knows, and the training config each is read with."""

import importlib.util
from pathlib import Path

# name -> (modality, config file, config argument)
CORPORA = {
  "fer2013": ("faces", "face_cnn.py", "data=fer2013"),
  "clips": ("faces", "face_cnn.py", "data=clips"),
  "synthetic": ("faces", "face_cnn.py", "data=synthetic"),
  "synthetic_clips": ("faces", "face_cnn.py", "data=synthetic_clips"),
  "ravdess": ("speech", "speech.py", "data=ravdess"),
  "tess": ("speech", "speech.py", "data=tess"),
  "crema_d": ("speech", "speech.py", "data=crema_d"),
  "goemotions": ("text", "text.py", ""),
  "labelled_text": ("text", "text.py", ""),
  "ravdess_av": ("aligned", None, ""),
  "cmu_mosi": ("aligned", None, ""),
}
DESCRIPTIONS = {
  "fer2013": "FER2013 (image folders or the Kaggle CSV)",
  "clips": "face clips (class folders of videos/frames, or CK+ as released)",
  "synthetic": "the built-in synthetic faces",
  "synthetic_clips": "the synthetic clips",
  "ravdess": "RAVDESS speech",
  "tess": "TESS",
  "crema_d": "CREMA-D",
  "goemotions": "GoEmotions (Reddit comments)",
  "labelled_text": "labelled text (a CSV/TSV file or folder of them, one Ekman label per row)",
  "ravdess_av": "RAVDESS facial action units + speech, aligned per clip",
  "cmu_mosi": "CMU-MOSI text, audio and video features, aligned per utterance",
}
REPO = Path(__file__).resolve().parents[2]


class UserError(Exception):
  """A mistake the user can fix (unknown corpus, missing folder, bad split): one line, exit code 2."""


def data_config(name: str, config_spec: str = ""):
  """`config.data` of the training config of `name`'s modality (or of `config_spec`, "file.py[:arg]")."""
  modality, file, arg = CORPORA[name]
  if config_spec:
    file, _, arg = config_spec.partition(":")
    path = Path(file)
  elif file is None:
    return None
  else:
    path = REPO / "configs" / file
  if not path.is_file():
    raise UserError(
      f"config file {path} not found; pass --config path/to/config.py[:arg] (the repository's "
      "configs/ folder holds one per modality)."
    )
  spec = importlib.util.spec_from_file_location(f"_emojax_explore_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  config.data.name = name  # the modality's config names its default corpus; read the one asked for
  return config.data
