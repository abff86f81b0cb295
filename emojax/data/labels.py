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


def class_names(label_space: str) -> tuple[str, ...]:
  spaces = {"ekman7": EKMAN7, "fer2013": FER2013_CLASSES}
  if label_space not in spaces:
    raise ValueError(f"Unknown label space {label_space!r}; expected one of {sorted(spaces)}.")
  return spaces[label_space]
