"""Reading what `emojax.data.tfds_builders` prepared: the array_record files of a dataset, by random access.

A reader, not a preparation tool: it opens a prepared folder through tfds's own description of it
(`dataset_info.json`, `features.json`; `tfds.builder_from_directory`), so reading needs neither the builder
classes nor the release they were prepared from, and grain takes the returned source as is.
"""

import os
from pathlib import Path

import numpy as np

# tfds's name of each builder in tfds_builders (the folder it writes under data_dir).
BUILDER_NAMES = {"goemotions": "emojax_goemotions", "fer2013": "emojax_fer2013"}
SPLIT_ALIASES = {"dev": "validation"}  # goemotions.SPLIT_FILES names dev.tsv's split both ways
GOEMOTIONS_NUM_LABELS = 28


def _version(folder: Path) -> tuple[int, ...]:
  try:
    return tuple(int(part) for part in folder.name.split("."))
  except ValueError:
    return ()


def data_source(dataset: str, data_dir: str | os.PathLike, split: str):
  """The random-access `tfds` data source of a prepared split (its newest prepared version)."""
  import tensorflow_datasets as tfds

  if dataset not in BUILDER_NAMES:
    raise ValueError(f"Unknown dataset {dataset!r}; prepared datasets are {sorted(BUILDER_NAMES)}.")
  data_dir = Path(data_dir).expanduser()
  folder = data_dir / BUILDER_NAMES[dataset]
  versions = (
    [p for p in folder.iterdir() if _version(p) and (p / "dataset_info.json").is_file()] if folder.is_dir() else []
  )
  if not versions:
    raise FileNotFoundError(
      f"No prepared {dataset} under {data_dir} (expected {folder}/<version>). Prepare it once with "
      f"`python -m emojax.data.tfds_builders --dataset {dataset} --source <release folder> --data_dir {data_dir}`."
    )
  builder = tfds.builder_from_directory(str(max(versions, key=_version)))
  split = SPLIT_ALIASES.get(split, split)
  if split not in builder.info.splits:
    raise ValueError(f"{builder.data_path} has splits {sorted(builder.info.splits)}, not {split!r}.")
  if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
    raise ValueError(
      f"{builder.data_path} holds {builder.info.file_format.value} files; random access needs "
      "array_record. Prepare it again with `tfds_builders.prepare(..., overwrite=True)`."
    )
  return builder.as_data_source(split=split)


def load_goemotions(data_dir: str | os.PathLike, split: str) -> tuple[list[str], np.ndarray, list[str]]:
  """(texts, 28-label multi-hot float32 [N, 28], comment ids) of a prepared GoEmotions split, in TSV order:
  the values `goemotions.read_rows` gives for that split's TSV, so `goemotions.load` can use either."""
  source = data_source("goemotions", data_dir, split)
  examples = source.__getitems__(range(len(source)))  # one batched read instead of N lookups
  texts = [example["text"].decode("utf-8") for example in examples]
  ids = [example["comment_id"].decode("utf-8") for example in examples]
  multi_hot = (
    np.stack([example["labels"] for example in examples]).astype(np.float32)
    if examples
    else np.zeros((0, GOEMOTIONS_NUM_LABELS), np.float32)
  )
  return texts, multi_hot, ids
