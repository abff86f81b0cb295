"""Label spaces and the mappings from each dataset's own labels onto them.

Ekman-7 is the common space of every modality (and of fusion): FER2013 is in it already, the speech corpora
map through `speech_to_ekman7` (RAVDESS `calm` merged into neutral or dropped), GoEmotions' 28 labels through
the release's own `ekman_mapping.json` (`goemotions_to_ekman7`). Its index order is FER2013's Kaggle order
(0=angry ... 6=neutral), so FER2013 labels need no remapping and a confusion matrix reads the
same for every dataset.
"""

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
    "neutral": "neutral", "calm": "neutral", "happy": "happiness", "sad": "sadness", "angry": "anger",
    "anger": "anger", "fearful": "fear", "fear": "fear", "disgust": "disgust", "surprised": "surprise",
    "pleasant_surprise": "surprise",
}


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


def goemotions_to_ekman7(goemotions_root: str, names=None):
  """[28, 7] 0/1 membership of GoEmotions' labels in the Ekman-7 groups (EKMAN7 order), from the release's
  `ekman_mapping.json` (read and checked by `goemotions.LabelSpaces`); `names`, if given, must be the 28 labels
  in `emotions.txt` order (an export's class names), so a matrix is never applied to another label order."""
  from emojax.data.goemotions import LabelSpaces
  spaces = LabelSpaces(goemotions_root)
  if names is not None and tuple(names) != spaces.emotions:
    raise ValueError(f"Classes {tuple(names)} are not emotions.txt's {spaces.emotions}.")
  return spaces.groupings["ekman"]
