"""Label spaces and the mappings from each dataset's own labels onto them.

Ekman-7 is the common space of every modality (and of fusion): FER2013 is in it already, the speech corpora
map through `speech_to_ekman7` (RAVDESS `calm` merged into neutral or dropped), GoEmotions' 28 labels through
the release's own `ekman_mapping.json` (`goemotions.ekman_matrix`). Its index order is FER2013's Kaggle order
(0=angry ... 6=neutral), so FER2013 labels need no remapping and a confusion matrix reads the
same for every dataset.
"""

import dataclasses

import numpy as np

EKMAN7 = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")

# FER2013 as released on Kaggle: `emotion` column ids 0..6 in this order.
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# The image-folder layout names class folders by these lower-case words.
FER2013_FOLDER_TO_INDEX = {name: i for i, name in enumerate(FER2013_CLASSES)}

# Speech corpora, each in its own order (RAVDESS: emotion code 01..08 in file names).
RAVDESS_CLASSES = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
TESS_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "pleasant_surprise", "sad")
CREMA_D_CLASSES = ("anger", "disgust", "fear", "happy", "neutral", "sad")

# Each dataset's class name -> Ekman-7 name. RAVDESS's `calm` has no Ekman class: the config
# decides whether it joins `neutral` or is dropped (`speech_to_ekman7`).
_TO_EKMAN7 = {
  "neutral": "neutral",
  "calm": "neutral",
  "happy": "happiness",
  "sad": "sadness",
  "angry": "anger",
  "anger": "anger",
  "fearful": "fear",
  "fear": "fear",
  "disgust": "disgust",
  "surprised": "surprise",
  "pleasant_surprise": "surprise",
}


def _label_key(name: str) -> str:
  return " ".join(str(name).strip().lower().replace("_", " ").replace("-", " ").split())


# Names corpora give the Ekman classes (text corpora, image and clip folders, the speech corpora's own classes).
_EKMAN7_SYNONYMS = {
  _label_key(k): v
  for k, v in {
    **{name: name for name in EKMAN7},
    **_TO_EKMAN7,
    "joy": "happiness",
    "happy": "happiness",
    "sadness": "sadness",
    "sad": "sadness",
    "angry": "anger",
    "fearful": "fear",
    "scared": "fear",
    "afraid": "fear",
    "disgusted": "disgust",
    "surprised": "surprise",
    "no emotion": "neutral",
  }.items()
}


def ekman7_name(name: str) -> str | None:
  """The Ekman-7 class a label name means (`joy` -> happiness, `angry` -> anger, `pleasant_surprise` -> surprise,
  RAVDESS's `calm` -> neutral, as `speech_to_ekman7` merges it by default), or None when it means none of them
  (`love`, `contempt`). Case, spaces, `_` and `-` do not matter."""
  return _EKMAN7_SYNONYMS.get(_label_key(name))


def speech_to_ekman7(native_name: str, calm: str = "neutral") -> str | None:
  """Ekman-7 name of a speech corpus class, or None when the class is dropped (`calm="drop"`)."""
  if calm not in ("neutral", "drop"):
    raise ValueError(f"config.data.calm={calm!r}; expected 'neutral' (merge calm into neutral) or 'drop'.")
  if native_name == "calm" and calm == "drop":
    return None
  return _TO_EKMAN7[native_name]


def class_names(label_space: str) -> tuple[str, ...]:
  spaces = {"ekman7": EKMAN7, "fer2013": FER2013_CLASSES}
  if label_space not in spaces:
    raise ValueError(f"Unknown label space {label_space!r}; expected one of {sorted(spaces)}.")
  return spaces[label_space]


@dataclasses.dataclass(frozen=True)
class LabelSpace:
  """What a model's outputs mean: its classes, whether they are multi-label (sigmoid per class) or one softmax,
  and how they reach Ekman-7, the space every modality and corpus shares.

  `ekman_matrix` [C, 7] is 0/1, row c marking the Ekman class(es) class c belongs to (RAVDESS's calm and neutral
  both in neutral; GoEmotions' 28 labels grouped by the release's ekman_mapping.json); None when the classes have
  no Ekman meaning (GoEmotions' sentiment space).
  """

  class_names: tuple[str, ...]
  multi_label: bool = False
  ekman_matrix: np.ndarray | None = None
  sentiment_names: tuple[str, ...] | None = None

  def ekman7_probabilities(self, logits: np.ndarray) -> np.ndarray:
    """Logits [N, C] -> an Ekman-7 distribution [N, 7]: a softmax's class probabilities summed into their Ekman
    class; for multi-label outputs each Ekman group's most probable member (sigmoid), normalised, as fusion maps
    text (`ekman_log_probabilities`)."""
    if self.ekman_matrix is None:
      raise ValueError(
        f"Classes {self.class_names} have no Ekman-7 mapping (e.g. GoEmotions' sentiment space): "
        "train on a space with emotions to compare or fuse it in Ekman-7."
      )
    logits = np.asarray(logits, np.float64)
    if self.multi_label:
      return np.exp(ekman_log_probabilities(logits, self.ekman_matrix))
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    return probabilities @ self.ekman_matrix

  def to_dict(self) -> dict:
    return {
      "class_names": list(self.class_names),
      "multi_label": self.multi_label,
      "ekman_matrix": None if self.ekman_matrix is None else np.asarray(self.ekman_matrix).astype(int).tolist(),
      "sentiment_names": None if self.sentiment_names is None else list(self.sentiment_names),
    }

  @classmethod
  def from_dict(cls, fields: dict) -> "LabelSpace":
    matrix = fields.get("ekman_matrix")
    sentiment = fields.get("sentiment_names")
    return cls(
      tuple(fields["class_names"]),
      bool(fields.get("multi_label", False)),
      None if matrix is None else np.asarray(matrix, np.float64),
      None if sentiment is None else tuple(sentiment),
    )


def single_label_space(class_names) -> LabelSpace:
  """Single-label classes mapped to Ekman-7 by name (`ekman7_name`); a class that means none maps nowhere, and
  classes none of which is an emotion (MOSI's negative/positive) have no Ekman mapping at all."""
  matrix = np.zeros((len(class_names), len(EKMAN7)))
  for row, name in enumerate(class_names):
    ekman = ekman7_name(name)
    if ekman is not None:
      matrix[row, EKMAN7.index(ekman)] = 1.0
  return LabelSpace(tuple(class_names), False, matrix if matrix.any() else None)


def ekman_log_probabilities(logits, matrix=None, xp=np):
  """Multi-label logits [N, K] -> log of a 7-way distribution: each Ekman group's best member probability
  (sigmoid), normalised; `matrix` [K, 7] groups K labels (None: the K labels are Ekman-7 already). `xp` is
  numpy or jax.numpy, so exports and the end-to-end model map text the same way."""
  probabilities = 1 / (1 + xp.exp(-logits))
  if matrix is not None:
    members = xp.asarray(matrix) > 0  # [K, 7]
    probabilities = xp.where(members[None], probabilities[..., None], 0).max(1)  # [N, 7]
  distribution = probabilities / probabilities.sum(1, keepdims=True)
  return xp.log(xp.clip(distribution, 1e-9, 1))
