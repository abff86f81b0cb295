"""Per-example image augmentation for 48x48 faces, driven by a numpy Generator.

grain's `random_map` hands each example a Generator seeded from (seed, example position), so
augmentation is reproducible and a resumed run draws the same transforms as an uninterrupted one.
Crop, flip and rotation are folded into one affine resampling to keep the cost to one pass.
"""

import ml_collections
import numpy as np
from scipy import ndimage


def validate(config: ml_collections.ConfigDict) -> None:
  checks = {
      "crop_padding": config.crop_padding >= 0,
      "rotation_degrees": 0 <= config.rotation_degrees <= 180,
      "contrast": 0 <= config.contrast < 1,
      "brightness": 0 <= config.brightness < 1,
  }
  for field, ok in checks.items():
    if not ok:
      raise ValueError(f"config.data.augment.{field}={config[field]} is out of range "
                       "(crop_padding >= 0, rotation_degrees in [0, 180], contrast and brightness in [0, 1)).")


def augment_image(image: np.ndarray, rng: np.random.Generator, config: ml_collections.ConfigDict) -> np.ndarray:
  """float32 [H, W, C] in [0, 1] -> augmented float32 [H, W, C] in [0, 1]."""
  height, width = image.shape[:2]
  angle = np.deg2rad(rng.uniform(-config.rotation_degrees, config.rotation_degrees))
  flip = -1.0 if config.flip and rng.random() < 0.5 else 1.0
  shift = rng.integers(-config.crop_padding, config.crop_padding + 1, size=2)
  if angle or flip < 0 or shift.any():
    # Output pixel o maps to input pixel matrix @ (o - center) + center + shift; a random crop of a
    # padded image is the same as a shift with edge replication.
    cos, sin = np.cos(angle), np.sin(angle)
    matrix = np.array([[cos, -sin], [sin, cos]]) @ np.diag([1.0, flip])
    center = np.array([(height - 1) / 2, (width - 1) / 2])
    offset = center + shift - matrix @ center
    image = np.stack([
        ndimage.affine_transform(image[..., c], matrix, offset=offset, order=1, mode="nearest")
        for c in range(image.shape[-1])
    ], axis=-1)
  if config.contrast:
    mean = image.mean()
    image = (image - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
  if config.brightness:
    image = image + rng.uniform(-config.brightness, config.brightness)
  return np.clip(image, 0.0, 1.0).astype(np.float32)
