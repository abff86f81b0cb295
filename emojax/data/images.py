"""Images in: any picture -> grayscale pixels -> 48x48 face crops, for the readers and for inference alike.

`decode_image` is what the FER2013 reader does to every file, and `emojax.inference` does to a face given
as an aligned crop (`detect="none"`), so a trained face model sees the same pixels from a user as it saw
from its validation split. `detect_faces` is OpenCV's bundled frontal-face Haar cascade (no download), with
the settings the clip reader crops with (inference searches a shrunk copy of a photo, with coarser steps:
`PHOTO_SEARCH_SIDE`, `PHOTO_SCALE_FACTOR`); `face_square` widens a detector box into the square crop a face
model expects, with a little context around the detector's tight box.

Sources may be a path, bytes, a file object, a PIL image or a numpy array: grayscale [H, W] or [H, W, 1],
colour [H, W, 3] in RGB order (PIL's; an OpenCV BGR frame should go through `cv2.cvtColor` first) or RGBA
[H, W, 4]; uint8, or floats in [0, 1]. Colour becomes gray with PIL's ITU-R 601-2 luma, as the readers do.
"""

import functools
import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SIZE = 48
# The clip reader's detector settings (emojax.data.clips): a face smaller than 24 pixels is not a face here.
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 5
HAAR_MIN_SIZE = 24
FACE_CONTEXT = 1.2  # the square crop's side, relative to the detector box's longer side
# Photos (inference): searched at most 320 pixels on their longer side, in window steps of 1.2, which is far
# faster than the full picture in steps of 1.1 (docs/inference.md), for faces of at least 24/320 of the
# picture's longer side (48 pixels of a 640-pixel photo).
PHOTO_SEARCH_SIDE = 320
PHOTO_SCALE_FACTOR = 1.2


class BadImage(ValueError):
  """A source that is not a usable picture: unreadable, empty, or an array of the wrong shape or type."""


def to_grayscale(source) -> np.ndarray:
  """Any supported image source -> uint8 [H, W] grayscale (EXIF orientation applied to files)."""
  if isinstance(source, Image.Image):
    return np.asarray(source.convert("L"), dtype=np.uint8)
  if isinstance(source, np.ndarray):
    return _array_to_grayscale(source)
  if isinstance(source, (bytes, bytearray, memoryview)):
    if len(source) == 0:
      raise BadImage("empty image bytes")
    source = io.BytesIO(bytes(source))
  elif isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
    raise BadImage(f"no image file at {os.fspath(source)!r}")
  try:
    with Image.open(source) as image:
      image = ImageOps.exif_transpose(image)
      return np.asarray(image.convert("L"), dtype=np.uint8)
  except UnidentifiedImageError as error:
    raise BadImage(f"not an image PIL can read ({error})") from error
  except (OSError, ValueError, Image.DecompressionBombError) as error:
    raise BadImage(f"unreadable image ({error})") from error


def _array_to_grayscale(array: np.ndarray) -> np.ndarray:
  if array.size == 0:
    raise BadImage(f"empty image array (shape {array.shape})")
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
    raise BadImage(f"an image array is [H, W], [H, W, 1], [H, W, 3] (RGB) or [H, W, 4] (RGBA); got shape {array.shape}")
  if array.dtype != np.uint8:
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
      raise BadImage(f"image array of dtype {array.dtype}; expected uint8, or floats in [0, 1]")
    if not np.isfinite(array).all():
      raise BadImage("image array holds NaN or infinite values")
    scale = 255.0 if np.issubdtype(array.dtype, np.floating) else 1.0
    array = np.clip(np.round(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
  if array.ndim == 2:
    return np.ascontiguousarray(array)
  return np.asarray(Image.fromarray(array, "RGB" if array.shape[-1] == 3 else "RGBA").convert("L"), dtype=np.uint8)


def resize_face(gray: np.ndarray) -> np.ndarray:
  """uint8 [H, W] -> uint8 [48, 48, 1], bilinear (PIL's, which averages over the source pixels when shrinking)."""
  image = Image.fromarray(np.asarray(gray, np.uint8), "L")
  if image.size != (IMAGE_SIZE, IMAGE_SIZE):
    image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
  return np.asarray(image, dtype=np.uint8)[:, :, None]


def decode_image(source) -> np.ndarray:
  """Any image -> uint8 [48, 48, 1] grayscale, resized if the source is another size: the FER2013 reader's
  decoding of each file, and inference's for an aligned face crop."""
  return resize_face(to_grayscale(source))


@functools.lru_cache(maxsize=1)
def haar_detector():
  """OpenCV's frontal-face Haar cascade, shipped inside the opencv-python wheel."""
  import cv2

  path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
  detector = cv2.CascadeClassifier(path)
  if detector.empty():
    raise FileNotFoundError(f"OpenCV's face detector did not load from {path}; reinstall opencv-python-headless.")
  return detector


def detect_faces(
  gray: np.ndarray, max_side: int | None = None, scale_factor: float = HAAR_SCALE_FACTOR
) -> list[tuple[int, int, int, int]]:
  """Frontal faces in a uint8 [H, W] image as (x, y, width, height) boxes in its pixels, largest first.

  `max_side`: search a copy shrunk so its longer side is at most this many pixels (never enlarged) and scale the
  boxes back; the cascade's cost grows with the pixels it scans, and faces smaller than HAAR_MIN_SIZE pixels of the
  copy are not found. `scale_factor`: the step between the detector's window sizes (larger: fewer, faster).
  """
  import cv2

  gray = np.asarray(gray, np.uint8)
  scale = 1.0
  if max_side and max(gray.shape) > max_side:
    scale = max(gray.shape) / max_side
    size = (max(1, round(gray.shape[1] / scale)), max(1, round(gray.shape[0] / scale)))
    gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
  faces = haar_detector().detectMultiScale(
    gray, scaleFactor=scale_factor, minNeighbors=HAAR_MIN_NEIGHBORS, minSize=(HAAR_MIN_SIZE, HAAR_MIN_SIZE)
  )
  boxes = [tuple(int(round(v * scale)) for v in face) for face in faces]
  return sorted(boxes, key=lambda box: (-box[2] * box[3], box[1], box[0]))


def face_square(box, height: int, width: int) -> tuple[int, int, int]:
  """(top, left, side) of the square crop around a detector box: FACE_CONTEXT times its longer side, centred on
  it and moved (not cut) to stay inside the image."""
  x, y, w, h = box
  side = min(int(max(w, h) * FACE_CONTEXT), height, width)
  top = int(np.clip(y + h / 2 - side / 2, 0, height - side))
  left = int(np.clip(x + w / 2 - side / 2, 0, width - side))
  return top, left, side
