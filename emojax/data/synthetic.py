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

from emojax import labels
from emojax.data.base import Dataset

SIZE = 48
# brow_slant (+ = inner ends down), brow_raise, eye_open, mouth_curve (+ = corners up),
# mouth_open, mouth_width -- one row per class, in EKMAN7 order.
_EXPRESSIONS = np.array(
  [
    [0.9, -0.3, 0.8, -0.8, 0.0, 0.9],  # anger
    [0.5, -0.6, 0.55, -1.2, 0.4, 0.7],  # disgust
    [-0.7, 0.9, 1.35, -0.4, 0.9, 0.9],  # fear
    [0.0, 0.1, 0.85, 1.6, 0.5, 1.2],  # happiness
    [-0.8, 0.3, 0.7, -1.6, 0.0, 0.9],  # sadness
    [0.0, 1.3, 1.5, 0.0, 2.0, 0.6],  # surprise
    [0.0, 0.0, 1.0, 0.0, 0.0, 1.0],  # neutral
  ],
  dtype=np.float32,
)
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
  expression = _EXPRESSIONS[label] + _JITTER * rng.standard_normal(6)
  return _render(expression, _draw_pose(rng), rng)


def load_clips(split: str, num_examples: int, seed: int = 0, length: int = 8, occlusion: float = 0.15) -> Dataset:
  """Short clips (`clip` uint8 [N, length, 48, 48, 1], all frames real) whose expression evolves over time.

  Like a posed sequence (CK+): each clip starts neutral and moves to its class's expression, reaching the apex
  at a random frame in the second half, while the head drifts a little. Each frame is, with probability
  `occlusion`, hidden behind a random block or drowned in noise (marked in `damaged` [N, length]), so a sequence
  model profits from attending to the right frames and ignoring the damaged ones.
  """
  if split not in _SPLIT_OFFSET:
    raise ValueError(f"Unknown split {split!r}; expected one of {sorted(_SPLIT_OFFSET)}.")
  if num_examples <= 0 or length <= 0:
    raise ValueError(f"Synthetic clips need num_examples > 0 and clip_length > 0 (got {num_examples}, {length}).")
  clips = np.empty((num_examples, length, SIZE, SIZE, 1), np.uint8)
  damaged = np.zeros((num_examples, length), bool)
  label_ids = np.empty((num_examples,), np.int32)
  neutral = _EXPRESSIONS[labels.EKMAN7.index("neutral")]
  for index in range(num_examples):
    rng = np.random.default_rng([seed, _SPLIT_OFFSET[split] + index, length])
    label_ids[index] = rng.integers(len(labels.EKMAN7))
    apex = _EXPRESSIONS[label_ids[index]] + _JITTER * rng.standard_normal(6)
    apex_frame = rng.integers(length // 2, length) if length > 1 else 0
    pose, drift = _draw_pose(rng), rng.uniform(-1, 1, size=2)
    for t in range(length):
      progress = min(1.0, t / max(apex_frame, 1))
      progress = progress * progress * (3 - 2 * progress)  # smooth onset
      drifted = {**pose, "cx": pose["cx"] + 0.4 * t * drift[0], "cy": pose["cy"] + 0.4 * t * drift[1]}
      frame = _render(neutral + progress * (apex - neutral), drifted, rng)
      if rng.random() < occlusion:
        frame, damaged[index, t] = _damage(frame, rng), True
      clips[index, t, :, :, 0] = frame
  ids = np.array([f"synthetic_clip_{split}_{i}" for i in range(num_examples)])
  return Dataset(
    {
      "clip": clips,
      "clip_mask": np.ones((num_examples, length), np.float32),
      "label": label_ids,
      "id": ids,
      "damaged": damaged,
    },
    class_names=labels.EKMAN7,
    model_inputs=("clip", "clip_mask", "label"),
  )


def _draw_pose(rng: np.random.Generator) -> dict:
  return {
    "cx": 24 + rng.uniform(-3, 3),
    "cy": 24 + rng.uniform(-3, 3),
    "scale": rng.uniform(0.9, 1.1),
    "background": rng.uniform(20, 90),
    "skin": rng.uniform(140, 220),
    "ink": rng.uniform(10, 50),
  }


def _damage(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """An occluding block over a third to a half of the face, or heavy noise."""
  frame = frame.astype(np.float32)
  if rng.random() < 0.5:
    h, w = rng.integers(16, 28, size=2)
    y, x = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
    frame[y : y + h, x : x + w] = rng.uniform(0, 255)
  else:
    frame += rng.normal(0, 70, frame.shape)
  return np.clip(frame, 0, 255).astype(np.uint8)


def _render(expression: np.ndarray, pose: dict, rng: np.random.Generator) -> np.ndarray:
  slant, raise_, eye_open, curve, mouth_open, width = expression
  y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
  cx, cy, scale = pose["cx"], pose["cy"], pose["scale"]
  image = np.full((SIZE, SIZE), pose["background"], np.float32)
  image[((x - cx) / (17 * scale)) ** 2 + ((y - cy) / (21 * scale)) ** 2 <= 1] = pose["skin"]
  ink = pose["ink"]

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
  upper = my - curve * 1.5 * scale * u**2
  lower = upper + max(mouth_open, 0.0) * 2.0 * scale * (1 - u**2) + 0.9
  image[inside & (y >= upper - 0.6) & (y <= lower)] = ink

  image += rng.normal(0, rng.uniform(3, 12), image.shape)
  return np.clip(image, 0, 255).astype(np.uint8)


def _segment_distance(x, y, a, b):
  (ax, ay), (bx, by) = a, b
  dx, dy = bx - ax, by - ay
  t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy + 1e-6), 0, 1)
  return np.hypot(x - (ax + t * dx), y - (ay + t * dy))
