"""Writes scalars to the console, to `<workdir>/metrics.jsonl` and to TensorBoard at once."""

import json
import logging
import time
from pathlib import Path

import jax
import numpy as np


class MetricWriter:
  def __init__(self, workdir: str | Path, enable_tensorboard: bool = True):
    self.is_primary = jax.process_index() == 0
    self.path = Path(workdir) / "metrics.jsonl"
    self._tensorboard = None
    if self.is_primary and enable_tensorboard:
      from tensorboardX import SummaryWriter  # imported lazily: it is slow and optional

      self._tensorboard = SummaryWriter(str(Path(workdir) / "tensorboard"))

  def write(self, step: int, split: str, scalars: dict) -> None:
    if not self.is_primary:
      return
    scalars = {k: float(np.asarray(v)) for k, v in scalars.items()}
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": step, "split": split, "time": time.time(), **scalars}) + "\n")
    if self._tensorboard is not None:
      for name, value in scalars.items():
        self._tensorboard.add_scalar(f"{split}/{name}", value, step)
      self._tensorboard.flush()
    logging.info("[%s] step %d  %s", split, step, "  ".join(f"{k} {v:.4g}" for k, v in scalars.items()))


def read_metrics(workdir: str | Path) -> list[dict]:
  path = Path(workdir) / "metrics.jsonl"
  if not path.exists():
    return []
  # A resumed run replays the steps after its last checkpoint; keep the newest record of each.
  records = {}
  for line in path.read_text().splitlines():
    if line.strip():
      record = json.loads(line)
      records[(record.get("split"), record["step"])] = record
  return sorted(records.values(), key=lambda r: r["step"])
