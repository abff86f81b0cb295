"""The in-memory dataset format shared by every reader.

A reader returns a `Dataset`: named numpy arrays with one row per example (the example dict is
`{name: array[i]}`), the class names, and optional named evaluation subsets (boolean masks, e.g.
FER2013 validation images that are not pixel copies of training images). Readers never import
models; the grain pipeline turns a `Dataset` into batches.
"""

import dataclasses
import logging
from typing import Mapping

import numpy as np


@dataclasses.dataclass
class Dataset:
  arrays: Mapping[str, np.ndarray]
  class_names: tuple[str, ...]
  eval_subsets: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
  skipped: list[str] = dataclasses.field(default_factory=list)
  # The arrays that go to the device (the rest, such as ids and speakers, stay on the host).
  model_inputs: tuple[str, ...] = ("image", "label")
  # Multi-label datasets (GoEmotions) carry multi-hot `labels` [N, C] instead of class ids `label` [N].
  multi_label: bool = False
  # Anything else evaluation needs, e.g. GoEmotions' label groupings: {"ekman": (names, [28, 7] 0/1 matrix)}.
  metadata: Mapping = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    lengths = {k: len(v) for k, v in self.arrays.items()}
    if len(set(lengths.values())) > 1:
      raise ValueError(f"Dataset arrays differ in length: {lengths}")

  def __len__(self) -> int:
    return len(next(iter(self.arrays.values())))

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in self.arrays.items()}

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def report_skipped(skipped: list[str], what: str, limit: int = 10) -> None:
  """Warns once with the count and the first few offenders, so bad files are never silent."""
  if not skipped:
    return
  shown = "\n  ".join(skipped[:limit])
  more = f"\n  ... and {len(skipped) - limit} more" if len(skipped) > limit else ""
  logging.warning("Skipped %d unreadable %s:\n  %s%s", len(skipped), what, shown, more)
