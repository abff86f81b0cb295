"""FER2013 reader for the two layouts users have.

* Image folders (the popular re-release, and `../shared/data/fer2013`):
  `<root>/<split>/<class>/*.jpg|png`, class folders `angry disgust fear happy neutral sad surprise`.
* The original Kaggle CSV: `<root>/fer2013.csv` (or `icml_face_data.csv`, or the CSV's own path)
  with columns `emotion,pixels,Usage`; Usage `Training`, `PublicTest`, `PrivateTest`.

Split names are ours (`train`, `validation`, `test`) and map onto each layout's own names.
Every image is decoded here, once, to uint8 [48, 48, 1]; files that cannot be decoded are skipped,
counted and named in a warning. The validation split carries an evaluation subset that excludes
the images that are exact pixel copies of training images (FER2013 has 280 in PublicTest).
"""

import csv
import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from emojax import labels
from emojax.data.base import Dataset, report_skipped
from emojax.data.images import IMAGE_SIZE, decode_image

_FOLDER_SPLITS = {
  "train": ("train", "Training", "training"),
  "validation": ("validation", "val", "PublicTest", "publictest"),
  "test": ("test", "PrivateTest", "privatetest"),
}
_CSV_USAGE = {"train": "Training", "validation": "PublicTest", "test": "PrivateTest"}
_CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}

LAYOUT_HELP = (
  "FER2013 is read from either an image-folder layout `<root>/<split>/<class>/*.jpg` "
  "(split folders `train`, `validation` or `test`; class folders "
  f"{', '.join(sorted(labels.FER2013_FOLDER_TO_INDEX))}) or the Kaggle CSV `<root>/fer2013.csv` "
  "with columns emotion,pixels,Usage. Point --config.data.root at the folder holding one of them."
)


def load(root: str | os.PathLike, split: str, mark_train_duplicates: bool = True) -> Dataset:
  """Reads one split. Returns images uint8 [N, 48, 48, 1], labels int32 [N] (Kaggle order)."""
  if split not in _FOLDER_SPLITS:
    raise ValueError(f"Unknown FER2013 split {split!r}; expected one of {sorted(_FOLDER_SPLITS)}.")
  images, label_ids, ids, skipped = _read_split(str(Path(root).expanduser()), split)
  report_skipped(skipped, f"FER2013 {split} images")
  subsets = {}
  if split != "train" and mark_train_duplicates:
    train_images = _read_split(str(Path(root).expanduser()), "train")[0]
    train_hashes = {_pixel_hash(image) for image in train_images}
    duplicate = np.array([_pixel_hash(image) in train_hashes for image in images], dtype=bool)
    subsets["without_train_duplicates"] = ~duplicate
  return Dataset(
    arrays={"image": images, "label": label_ids, "id": ids},
    class_names=labels.EKMAN7,
    eval_subsets=subsets,
    skipped=skipped,
  )


def _pixel_hash(image: np.ndarray) -> bytes:
  return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


@functools.lru_cache(maxsize=4)
def _read_split(root: str, split: str):
  """Cached: evaluating on validation reads train too, to find its duplicates."""
  path = Path(root)
  if path.is_file() and path.suffix == ".csv":
    return _read_csv(path, split)
  if not path.is_dir():
    raise FileNotFoundError(f"FER2013 root {path} does not exist. {LAYOUT_HELP}")
  for csv_name in _CSV_NAMES:
    if (path / csv_name).is_file():
      return _read_csv(path / csv_name, split)
  for folder in _FOLDER_SPLITS[split]:
    if (path / folder).is_dir():
      return _read_folder(path / folder)
  found = sorted(p.name for p in path.iterdir())[:20]
  raise FileNotFoundError(
    f"No FER2013 {split!r} split under {path} (found: {found}). Expected a split folder named one "
    f"of {list(_FOLDER_SPLITS[split])} or a CSV named one of {list(_CSV_NAMES)}. {LAYOUT_HELP}"
  )


def _read_folder(split_dir: Path):
  class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
  unknown = [p.name for p in class_dirs if p.name.lower() not in labels.FER2013_FOLDER_TO_INDEX]
  if unknown or not class_dirs:
    raise FileNotFoundError(
      f"{split_dir} should hold one folder per class; found unexpected entries {unknown or 'none'}. {LAYOUT_HELP}"
    )
  images, label_ids, ids, skipped = [], [], [], []
  for class_dir in class_dirs:
    label = labels.FER2013_FOLDER_TO_INDEX[class_dir.name.lower()]
    for file in sorted(class_dir.iterdir()):
      if file.suffix.lower() not in _IMAGE_SUFFIXES:
        continue
      try:
        image = decode_image(file)
      except (OSError, ValueError) as error:  # PIL raises these for truncated or non-image files
        skipped.append(f"{file}: {error}")
        continue
      images.append(image)
      label_ids.append(label)
      ids.append(f"{class_dir.name}/{file.stem}")
  if not images:
    raise FileNotFoundError(f"No readable images under {split_dir}. {LAYOUT_HELP}")
  return np.stack(images), np.array(label_ids, np.int32), np.array(ids), skipped


def _read_csv(csv_path: Path, split: str):
  usage = _CSV_USAGE[split]
  images, label_ids, ids, skipped = [], [], [], []
  with open(csv_path, newline="") as f:
    reader = csv.DictReader(f)
    # icml_face_data.csv writes " Usage" and " pixels" with a leading space.
    columns = {name.strip().lower(): name for name in (reader.fieldnames or [])}
    missing = {"emotion", "pixels", "usage"} - set(columns)
    if missing:
      raise ValueError(f"{csv_path} lacks columns {sorted(missing)}. {LAYOUT_HELP}")
    for row_number, row in enumerate(reader, start=2):
      if row[columns["usage"]].strip() != usage:
        continue
      try:
        label = int(row[columns["emotion"]])
        pixels = np.array(row[columns["pixels"]].split(), dtype=np.int64)
        if not 0 <= label < len(labels.FER2013_CLASSES):
          raise ValueError(f"emotion {label} is outside 0..6")
        if pixels.size != IMAGE_SIZE * IMAGE_SIZE or pixels.min() < 0 or pixels.max() > 255:
          raise ValueError(f"expected {IMAGE_SIZE * IMAGE_SIZE} pixel values in 0..255, got {pixels.size}")
      except (ValueError, TypeError) as error:
        skipped.append(f"{csv_path}:{row_number}: {error}")
        continue
      images.append(pixels.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 1))
      label_ids.append(label)
      ids.append(f"{usage}_{row_number}")
  if not images:
    raise FileNotFoundError(f"{csv_path} has no readable rows with Usage={usage}. {LAYOUT_HELP}")
  return np.stack(images), np.array(label_ids, np.int32), np.array(ids), skipped
