"""tensorflow-datasets builders that prepare local dataset folders into array_record files, without TensorFlow.

Parsing a release folder once into array_record gives every later run random access
(`tfds.data_source(...)[i]`), which grain reads directly, and a versioned, checksummed copy that
does not change under a training run. tfds needs no TensorFlow for this as long as the features
are `Tensor`, `Text` and `ClassLabel` (numpy serialization), the files are array_record and the
reader is `tfds.data_source`; `Image`/`Audio` features and `tfds.load` (tf.data) would import
TensorFlow, so images are stored as uint8 `Tensor`s here.

The parsing itself stays in the readers (`goemotions.read_rows`, `fer2013.load`): a builder only
moves their rows into tfds. Prepare once from the command line:

  python -m emojax.data.tfds_builders --source ../shared/data/goemotions --data_dir ~/tensorflow_datasets
  python -m emojax.data.tfds_builders --dataset fer2013 --source ../shared/data/fer2013 --data_dir ...

then point `config.data.tfds_dir` at the data_dir; `emojax.data.prepared` reads the files.
"""

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from emojax import labels as labels_lib
from emojax.data import fer2013, goemotions
from emojax.data.base import report_skipped
from emojax.data.prepared import GOEMOTIONS_NUM_LABELS


def _source_from(builder_source_dir: str | None, dl_manager, layout_help: str) -> Path:
  """The folder to read: the constructor's `source_dir`, else tfds' `manual_dir` (DownloadConfig)."""
  if builder_source_dir:
    source = Path(builder_source_dir).expanduser()
  else:
    try:
      source = Path(dl_manager.manual_dir)
    except AssertionError as error:  # tfds asserts when the manual folder is missing or empty
      raise FileNotFoundError(
        f"No source folder to prepare from: {error}\nPass source_dir=... or "
        f"tfds.download.DownloadConfig(manual_dir=...). {layout_help}"
      ) from None
  if not source.is_dir():
    raise FileNotFoundError(f"Source folder {source} does not exist. {layout_help}")
  return source


# --- GoEmotions ------------------------------------------------------------------------------
class GoEmotions(tfds.core.GeneratorBasedBuilder):
  """GoEmotions from the folder of the official release (train.tsv, dev.tsv, optional test.tsv).

  Rows keep their TSV order (shuffling is the input pipeline's job, and evaluation reads rows in
  the order of the release). `labels` is the 28-label multi-hot: a fixed-shape uint8 Tensor
  batches with no padding and compares directly with `goemotions.load`'s `labels_28`; a
  `Sequence(ClassLabel)` also works without TensorFlow, but comes back as ragged Python lists
  and would make the feature spec depend on emotions.txt, which a reader may not have.
  """

  # Not the tfds catalog's `goemotions` (downloaded from GCS, other features): ours is read from a local folder.
  name = "emojax_goemotions"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Text, comment id and 28-label multi-hot from the official TSV release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = goemotions.LAYOUT_HELP

  def __init__(self, *, source_dir: str | os.PathLike | None = None, **kwargs):
    self._source_dir = os.fspath(source_dir) if source_dir else None
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    # DatasetInfo directly, not `dataset_info_from_configs`: that reads README/CITATIONS files
    # from the builder's package folder, which here is emojax/data.
    return tfds.core.DatasetInfo(
      builder=self,
      description="GoEmotions (Demszky et al., 2020): Reddit comments, 27 emotions + neutral, multi-label.",
      features=tfds.features.FeaturesDict(
        {
          "text": tfds.features.Text(),
          "comment_id": tfds.features.Text(),
          "labels": tfds.features.Tensor(shape=(GOEMOTIONS_NUM_LABELS,), dtype=np.uint8),
        }
      ),
      homepage="https://github.com/google-research/google-research/tree/master/goemotions",
      disable_shuffling=True,
      # Saved beside the records, so a reader can see what preparation dropped: {split: [descriptions]}.
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    source = _source_from(self._source_dir, dl_manager, goemotions.LAYOUT_HELP)
    spaces = goemotions.LabelSpaces(source)  # fails early, naming the file, if the release is incomplete
    if len(spaces.emotions) != GOEMOTIONS_NUM_LABELS:
      raise ValueError(
        f"{source / 'emotions.txt'} names {len(spaces.emotions)} labels; GoEmotions has "
        f"{GOEMOTIONS_NUM_LABELS}. {goemotions.LAYOUT_HELP}"
      )
    split_files = {"train": "train.tsv", "validation": "dev.tsv"}
    for name, file in split_files.items():
      if not (source / file).is_file():
        raise FileNotFoundError(f"{source / file} is missing (the {name} split). {goemotions.LAYOUT_HELP}")
    if (source / "test.tsv").is_file():
      split_files["test"] = "test.tsv"
    self.info.metadata["emotions"] = list(spaces.emotions)
    self.info.metadata["skipped"] = {}
    return {name: self._generate_examples(source / file, name) for name, file in split_files.items()}

  def _generate_examples(self, path: Path, split: str):
    texts, multi_hot, ids, skipped = goemotions.read_rows(path, GOEMOTIONS_NUM_LABELS)
    report_skipped(skipped, f"GoEmotions {split} rows while preparing {path}")
    self.info.metadata["skipped"][split] = skipped
    if not texts:
      raise ValueError(f"{path} holds no usable rows ({len(skipped)} skipped). {goemotions.LAYOUT_HELP}")
    # Integer keys: with shuffling disabled, tfds writes records in key order, i.e. TSV order.
    for index, (text, row, comment_id) in enumerate(zip(texts, multi_hot.astype(np.uint8), ids)):
      yield index, {"text": text, "comment_id": comment_id, "labels": row}


# --- FER2013 ---------------------------------------------------------------------------------
class Fer2013(tfds.core.GeneratorBasedBuilder):
  """FER2013 from either layout `fer2013.load` reads; images as uint8 Tensors [48, 48, 1].

  `is_train_duplicate` marks validation/test images that are pixel copies of a training image,
  so evaluation can report the `without_train_duplicates` subset as `fer2013.load` does.
  """

  name = "emojax_fer2013"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "48x48 grayscale images, Kaggle-order labels, train-duplicate marks."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = fer2013.LAYOUT_HELP

  def __init__(self, *, source_dir: str | os.PathLike | None = None, **kwargs):
    self._source_dir = os.fspath(source_dir) if source_dir else None
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    size = fer2013.IMAGE_SIZE
    return tfds.core.DatasetInfo(
      builder=self,
      description="FER2013 facial expressions (Goodfellow et al., 2013), 7 classes in Kaggle order.",
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Tensor(shape=(size, size, 1), dtype=np.uint8),
          "label": tfds.features.ClassLabel(names=labels_lib.FER2013_CLASSES),
          "id": tfds.features.Text(),
          "is_train_duplicate": tfds.features.Tensor(shape=(), dtype=np.bool_),
        }
      ),
      disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    source = _source_from(self._source_dir, dl_manager, fer2013.LAYOUT_HELP)
    splits = ["train", "validation"]
    if _fer2013_has_test_split(source):
      splits.append("test")
    return {split: self._generate_examples(source, split) for split in splits}

  def _generate_examples(self, source: Path, split: str):
    # fer2013.load decodes, counts and reports unreadable files itself.
    data = fer2013.load(source, split, mark_train_duplicates=split != "train")
    duplicate = ~data.eval_subsets["without_train_duplicates"] if split != "train" else np.zeros(len(data), bool)
    for index in range(len(data)):
      yield (
        index,
        {
          "image": data.arrays["image"][index],
          "label": int(data.arrays["label"][index]),
          "id": str(data.arrays["id"][index]),
          "is_train_duplicate": bool(duplicate[index]),
        },
      )


def _fer2013_has_test_split(source: Path) -> bool:
  # The Kaggle CSV always holds PrivateTest; image folders may ship without a test folder. This reads
  # fer2013's own layout tables (private) so that the two files agree on which names mean "test".
  if any((source / name).is_file() for name in fer2013._CSV_NAMES):  # pylint: disable=protected-access
    return True
  return any((source / name).is_dir() for name in fer2013._FOLDER_SPLITS["test"])  # pylint: disable=protected-access


# --- Preparing and reading -------------------------------------------------------------------
BUILDERS = {"goemotions": GoEmotions, "fer2013": Fer2013}


def prepare(
  dataset: str, source_dir: str | os.PathLike, data_dir: str | os.PathLike, overwrite: bool = False
) -> tfds.core.DatasetBuilder:
  """Prepares `dataset` from `source_dir` into array_record files under `data_dir`; returns the builder.

  A second call finds the prepared files (`<data_dir>/<name>/<version>/`) and reuses them without
  reading `source_dir`; pass `overwrite=True` after the source folder changes.
  """
  if dataset not in BUILDERS:
    raise ValueError(f"Unknown dataset {dataset!r}; tfds builders exist for {sorted(BUILDERS)}.")
  source_dir = Path(source_dir).expanduser()
  builder_cls = BUILDERS[dataset]
  if not source_dir.is_dir():  # checked before tfds creates any folder under data_dir
    raise FileNotFoundError(f"Source folder {source_dir} does not exist. {builder_cls.MANUAL_DOWNLOAD_INSTRUCTIONS}")
  builder = builder_cls(
    source_dir=source_dir, data_dir=os.fspath(Path(data_dir).expanduser()), file_format="array_record"
  )
  # REUSE_CACHE_IF_EXISTS regenerates the records (a manual dataset has no download cache to reuse).
  mode = (
    tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
    if overwrite
    else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
  )
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(source_dir), download_mode=mode)
  )
  return builder


def prepare_goemotions(
  source_dir: str | os.PathLike, data_dir: str | os.PathLike, overwrite: bool = False
) -> tfds.core.DatasetBuilder:
  return prepare("goemotions", source_dir, data_dir, overwrite)


def prepare_fer2013(
  source_dir: str | os.PathLike, data_dir: str | os.PathLike, overwrite: bool = False
) -> tfds.core.DatasetBuilder:
  return prepare("fer2013", source_dir, data_dir, overwrite)


# --- Command line ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description="Prepare a local dataset folder into tfds array_record files.")
  parser.add_argument("--dataset", choices=sorted(BUILDERS), default="goemotions")
  parser.add_argument("--source", required=True, help="the release folder (e.g. ../shared/data/goemotions)")
  parser.add_argument("--data_dir", default="~/tensorflow_datasets", help="where tfds writes the prepared files")
  parser.add_argument("--overwrite", action="store_true", help="prepare again even if prepared files exist")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  start = time.perf_counter()
  builder = prepare(args.dataset, args.source, args.data_dir, overwrite=args.overwrite)
  seconds = time.perf_counter() - start
  print(f"{builder.name} {builder.version} at {builder.data_path} ({seconds:.1f} s)")
  for name, split in sorted(builder.info.splits.items()):
    print(f"  {name}: {split.num_examples} examples, {split.num_bytes / 2**20:.1f} MiB in {split.num_shards} shard(s)")


if __name__ == "__main__":
  main()
