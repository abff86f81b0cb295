"""Label spaces and the mappings from each dataset's own labels onto them.

Ekman-7 is the common space of every modality. Its index order is FER2013's Kaggle order
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
