"""Face clips (frame sequences) for the sequence model, from the layouts users have.

* Class folders: `<root>/<split>/<class>/<clip>`, each clip a video file (`.mp4 .avi .mov .mkv .webm .mpg`)
  or a folder of frame images in name order. Class folders use Ekman-7 or FER2013 names
  (`anger`/`angry`, `happiness`/`happy`, `sadness`/`sad`, ..., `neutral`).
* CK+ as released: `<root>/cohn-kanade-images/<subject>/<sequence>/*.png` with labels in
  `<root>/Emotion/<subject>/<sequence>/*_emotion.txt` (codes 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear,
  5 happy, 6 sadness, 7 surprise; contempt has no Ekman-7 class and is dropped, and counted). CK+ has no
  official split: subjects are dealt into `num_folds` folds in sorted order, and `fold` is the validation split.

Videos are decoded with OpenCV's wheel, which ships its own FFmpeg (no system ffmpeg needed). Each clip
becomes `clip_length` frames sampled evenly over its length (so a posed onset-to-apex sequence keeps its
apex), grayscale 48x48, cropped to the face by `face_crop`: `"none"` (the whole frame), `"center"` (the
central square) or `"haar"` (OpenCV's frontal-face detector on the clip's middle frame, one box for the
whole clip; a clip with no face found falls back to the central square and is counted). Clips shorter than
`clip_length` keep all their frames and are padded; `clip_mask` marks the real ones.
Unreadable videos, empty frame folders and undecodable frames are skipped, counted and named.
"""

from pathlib import Path

import cv2
import numpy as np

from emojax import labels
from emojax.data import images
from emojax.data.base import Dataset, report_skipped

SIZE = 48
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
CK_PLUS_CODES = ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
_CLASS_ALIASES = {
  **{name: name for name in labels.EKMAN7},
  **{fer: labels.EKMAN7[i] for fer, i in labels.FER2013_FOLDER_TO_INDEX.items()},
}
FACE_CROPS = ("none", "center", "haar")
LAYOUT_HELP = (
  "Clips are read from `<root>/<split>/<class>/<clip>` (a clip is a video file or a folder of frames; class "
  f"folders named {', '.join(labels.EKMAN7)} or FER2013's names) or from CK+ as released "
  "(`<root>/cohn-kanade-images` and `<root>/Emotion`). Point --config.data.root at that folder."
)


def load(config, split: str) -> Dataset:
  """Reads one split per `config` (root, clip_length, face_crop; num_folds and fold for CK+)."""
  if config.clip_length <= 0:
    raise ValueError(f"config.data.clip_length={config.clip_length} must be positive.")
  if config.face_crop not in FACE_CROPS:
    raise ValueError(f"config.data.face_crop={config.face_crop!r}; choose one of {FACE_CROPS}.")
  root = Path(config.root).expanduser()
  if not root.is_dir():
    raise FileNotFoundError(f"Clip root {root} does not exist. {LAYOUT_HELP}")
  if (root / "cohn-kanade-images").is_dir():
    sources, skipped = _ck_plus_sources(root, split, config.num_folds, config.fold)
  else:
    sources, skipped = _class_folder_sources(root, split)
  clips, masks, label_ids, ids, no_face = [], [], [], [], 0
  for source, label in sources:
    try:
      frames = read_frames(source)
      clip, mask, found = to_clip(frames, config.clip_length, config.face_crop)
    except (OSError, ValueError) as error:
      skipped.append(f"{source}: {error}")
      continue
    no_face += not found
    clips.append(clip)
    masks.append(mask)
    label_ids.append(labels.EKMAN7.index(label))
    ids.append(str(source.relative_to(root)))
  report_skipped(skipped, f"clips in {root} ({split})")
  if not clips:
    raise FileNotFoundError(f"No readable clips for split {split!r} under {root}. {LAYOUT_HELP}")
  return Dataset(
    arrays={
      "clip": np.stack(clips),
      "clip_mask": np.stack(masks),
      "label": np.array(label_ids, np.int32),
      "id": np.array(ids),
    },
    class_names=labels.EKMAN7,
    skipped=skipped,
    model_inputs=("clip", "clip_mask", "label"),
    metadata={"clips_without_face": no_face},
  )


def _class_folder_sources(root: Path, split: str):
  split_dir = root / split
  if not split_dir.is_dir():
    raise FileNotFoundError(f"No {split!r} folder under {root}. {LAYOUT_HELP}")
  sources, skipped = [], []
  for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
    label = _CLASS_ALIASES.get(class_dir.name.lower())
    if label is None:
      raise ValueError(f"{class_dir} is not a class folder this reader knows ({sorted(_CLASS_ALIASES)}). {LAYOUT_HELP}")
    for entry in sorted(class_dir.iterdir()):
      if entry.is_dir() or entry.suffix.lower() in VIDEO_SUFFIXES:
        sources.append((entry, label))
      elif not entry.name.startswith("."):
        skipped.append(f"{entry}: neither a video ({sorted(VIDEO_SUFFIXES)}) nor a folder of frames")
  return sources, skipped


def _ck_plus_sources(root: Path, split: str, num_folds: int, fold: int):
  if split not in ("train", "validation"):
    raise ValueError(
      f"CK+ has no official splits; split={split!r} must be 'train' or 'validation' "
      "(subject folds: config.data.num_folds, config.data.fold)."
    )
  if not 0 <= fold < num_folds:
    raise ValueError(f"config.data.fold={fold} must be in 0..{num_folds - 1} (config.data.num_folds={num_folds}).")
  subjects = sorted(p.name for p in (root / "Emotion").iterdir() if p.is_dir()) if (root / "Emotion").is_dir() else []
  if not subjects:
    raise FileNotFoundError(f"CK+ at {root} has no Emotion/<subject> label folders. {LAYOUT_HELP}")
  sources, skipped = [], []
  for number, subject in enumerate(subjects):
    if (number % num_folds == fold) != (split == "validation"):
      continue
    for label_file in sorted((root / "Emotion" / subject).glob("*/*_emotion.txt")):
      sequence = label_file.parent.name
      try:
        code = int(float(label_file.read_text().split()[0]))
        name = CK_PLUS_CODES[code]
      except (ValueError, IndexError) as error:
        skipped.append(f"{label_file}: unreadable emotion code ({error})")
        continue
      if name == "contempt":
        skipped.append(f"{label_file}: contempt has no Ekman-7 class")
        continue
      sources.append((root / "cohn-kanade-images" / subject / sequence, name))
  return sources, skipped


def read_frames(source: Path, max_frames: int = 1000) -> list[np.ndarray]:
  """A video file or a folder of images -> its frames as grayscale uint8 [H, W] arrays, in order."""
  if source.is_dir():
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
      raise ValueError(f"no frame images ({sorted(IMAGE_SUFFIXES)}) in the folder")
    frames = []
    for file in files[:max_frames]:
      frame = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
      if frame is None:
        raise ValueError(f"cannot decode frame {file.name}")
      frames.append(frame)
    return frames
  capture = cv2.VideoCapture(str(source))
  try:
    if not capture.isOpened():
      raise ValueError("cannot open the video (missing, corrupt, or a codec OpenCV's FFmpeg lacks)")
    frames = []
    while len(frames) < max_frames:
      ok, frame = capture.read()
      if not ok:
        break
      frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
  finally:
    capture.release()
  if not frames:
    raise ValueError("the video has no decodable frames")
  return frames


def to_clip(frames: list[np.ndarray], length: int, face_crop: str = "none"):
  """Frames -> (clip uint8 [length, 48, 48, 1], mask float32 [length], face found).

  `length` frames evenly spaced over the clip (all of them, padded with zeros, when it is shorter).
  """
  count = len(frames)
  picks = np.arange(count) if count <= length else np.round(np.linspace(0, count - 1, length)).astype(int)
  box, found = _crop_box(frames[count // 2], face_crop)
  (top, left, side), clip = box, np.zeros((length, SIZE, SIZE, 1), np.uint8)
  for row, index in enumerate(picks):
    frame = frames[index]
    if frame.shape != frames[0].shape:
      raise ValueError(f"frame {index} is {frame.shape}, the first {frames[0].shape}: frames must share one size")
    crop = frame[top : top + side, left : left + side]
    clip[row, :, :, 0] = cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
  mask = (np.arange(length) < len(picks)).astype(np.float32)
  return clip, mask, found


def _crop_box(frame: np.ndarray, face_crop: str):
  """(top, left, side) of the square to keep, and whether a face was found (always True without detection)."""
  height, width = frame.shape
  if face_crop == "none":
    return (0, 0, max(height, width)), True  # a non-square frame is squeezed by the resize instead
  side = min(height, width)
  center = ((height - side) // 2, (width - side) // 2, side)
  if face_crop == "center":
    return center, True
  faces = images.detect_faces(frame)
  if not faces:
    return center, False
  return images.face_square(faces[0], height, width), True  # the largest face, with a little context
