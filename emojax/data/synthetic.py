"""The built-in default dataset: procedurally drawn 48x48 faces whose expression is the label.

It exists so `make demo` and the tests run with no download. Every example is drawn from
(seed, split, index) alone, so two runs see identical data. Each Ekman-7 class sets the mean of six
expression parameters (brow slant and height, eye opening, mouth curvature, opening and width); per
example these are jittered, together with face position, size, brightness and pixel noise, so
classes overlap a little and a model has to learn the geometry, not a template.
The example format is the real readers' (`image` uint8 [48, 48, 1], `label`, `id`); later modalities
add their own keys (`audio`, `text`) beside `image`.
No figure reported for a real dataset comes from here.
"""

import numpy as np

from emojax.data import labels
from emojax.data.base import Dataset

SIZE = 48
# brow_slant (+ = inner ends down), brow_raise, eye_open, mouth_curve (+ = corners up),
# mouth_open, mouth_width -- one row per class, in EKMAN7 order.
_EXPRESSIONS = np.array([
    [0.9, -0.3, 0.8, -0.8, 0.0, 0.9],   # anger
    [0.5, -0.6, 0.55, -1.2, 0.4, 0.7],  # disgust
    [-0.7, 0.9, 1.35, -0.4, 0.9, 0.9],  # fear
    [0.0, 0.1, 0.85, 1.6, 0.5, 1.2],    # happiness
    [-0.8, 0.3, 0.7, -1.6, 0.0, 0.9],   # sadness
    [0.0, 1.3, 1.5, 0.0, 2.0, 0.6],     # surprise
    [0.0, 0.0, 1.0, 0.0, 0.0, 1.0],     # neutral
], dtype=np.float32)
_JITTER = np.array([0.3, 0.3, 0.15, 0.45, 0.3, 0.15], dtype=np.float32)
_SPLIT_OFFSET = {"train": 0, "validation": 1_000_003, "test": 2_000_003}


def load(split: str, num_examples: int, seed: int = 0) -> Dataset:
  if split not in _SPLIT_OFFSET:
    raise ValueError(f"Unknown split {split!r}; expected one of {sorted(_SPLIT_OFFSET)}.")
  if num_examples <= 0:
    raise ValueError(f"config.data.num_examples must be positive, got {num_examples}.")
  images = np.empty((num_examples, SIZE, SIZE, 1), np.uint8)
  label_ids = np.empty((num_examples,), np.int32)
  for index in range(num_examples):
    rng = np.random.default_rng([seed, _SPLIT_OFFSET[split] + index])
    label_ids[index] = rng.integers(len(labels.EKMAN7))
    images[index, :, :, 0] = draw_face(label_ids[index], rng)
  ids = np.array([f"synthetic_{split}_{i}" for i in range(num_examples)])
  return Dataset({"image": images, "label": label_ids, "id": ids}, class_names=labels.EKMAN7)


def draw_face(label: int, rng: np.random.Generator) -> np.ndarray:
  slant, raise_, eye_open, curve, mouth_open, width = _EXPRESSIONS[label] + _JITTER * rng.standard_normal(6)
  y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
  cx, cy = 24 + rng.uniform(-3, 3), 24 + rng.uniform(-3, 3)
  scale = rng.uniform(0.9, 1.1)
  background, skin, ink = rng.uniform(20, 90), rng.uniform(140, 220), rng.uniform(10, 50)
  image = np.full((SIZE, SIZE), background, np.float32)
  image[((x - cx) / (17 * scale)) ** 2 + ((y - cy) / (21 * scale)) ** 2 <= 1] = skin

  for side in (-1, 1):
    ex, ey = cx + side * 7 * scale, cy - 5 * scale
    eye = ((x - ex) / (3.2 * scale)) ** 2 + ((y - ey) / (max(eye_open, 0.2) * 1.6 * scale)) ** 2 <= 1
    image[eye] = ink
    # Brow: a thick segment above the eye; slant > 0 lowers its inner (nose-side) end.
    inner = (ex - side * 3.5 * scale, ey - (4.5 + 1.5 * raise_ - 1.6 * slant) * scale)
    outer = (ex + side * 3.5 * scale, ey - (4.5 + 1.5 * raise_) * scale)
    image[_segment_distance(x, y, inner, outer) <= 0.9 * scale] = ink

  # Mouth: upper lip y = my - curve * u^2 (u in [-1, 1]); the lower lip opens below it.
  mx, my, half_width = cx, cy + 10 * scale, 6 * scale * max(width, 0.3)
  u = (x - mx) / half_width
  inside = np.abs(u) <= 1
  upper = my - curve * 1.5 * scale * u ** 2
  lower = upper + max(mouth_open, 0.0) * 2.0 * scale * (1 - u ** 2) + 0.9
  image[inside & (y >= upper - 0.6) & (y <= lower)] = ink

  image += rng.normal(0, rng.uniform(3, 12), image.shape)
  return np.clip(image, 0, 255).astype(np.uint8)


def _segment_distance(x, y, a, b):
  (ax, ay), (bx, by) = a, b
  dx, dy = bx - ax, by - ay
  t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy + 1e-6), 0, 1)
  return np.hypot(x - (ax + t * dx), y - (ay + t * dy))
