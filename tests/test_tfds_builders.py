"""tfds builders: a small copy of the real releases prepared to array_record, read back without TensorFlow."""

import logging
import shutil
from pathlib import Path

import grain
import numpy as np
import pytest
import tensorflow_datasets as tfds

from emojax.data import fer2013, goemotions, prepared, tfds_builders
from tests.conftest import SHARED_DATA

TRAIN_ROWS, DEV_ROWS = 300, 100
BAD_ROW = "a row with a label id out of range\t28\tbad_row_id\n"


def _copy_goemotions(destination, with_test_split=False):
  """The first rows of the real TSVs, one malformed train row, and the real label files."""
  source = SHARED_DATA / "goemotions"
  if not source.is_dir():
    pytest.fail(f"Real GoEmotions data is expected at {source} (../shared/data beside the checkout).")
  destination.mkdir(parents=True)
  for name in ("emotions.txt", "ekman_mapping.json", "sentiment_dict.json"):
    shutil.copy(source / name, destination / name)
  train_lines = (source / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:TRAIN_ROWS]
  dev_lines = (source / "dev.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:DEV_ROWS]
  train_text = "".join(train_lines[:10]) + BAD_ROW + "".join(train_lines[10:])
  (destination / "train.tsv").write_text(train_text, encoding="utf-8")
  (destination / "dev.tsv").write_text("".join(dev_lines), encoding="utf-8")
  if with_test_split:
    (destination / "test.tsv").write_text("".join(dev_lines[:40]), encoding="utf-8")
  return destination


@pytest.fixture(scope="module")
def small_goemotions(tmp_path_factory):
  return _copy_goemotions(tmp_path_factory.mktemp("goemotions_source") / "goemotions")


@pytest.fixture(scope="module")
def prepared_goemotions(small_goemotions, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  builder = tfds_builders.prepare_goemotions(small_goemotions, data_dir)
  return builder, data_dir


def test_prepared_splits_hold_every_usable_tsv_row(small_goemotions, tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    builder = tfds_builders.prepare_goemotions(small_goemotions, tmp_path)
  assert {name: split.num_examples for name, split in builder.info.splits.items()} == {
    "train": len(goemotions.load(small_goemotions, "train")),
    "validation": DEV_ROWS,
  }
  assert len(goemotions.load(small_goemotions, "train")) == TRAIN_ROWS
  # The malformed row is skipped, counted in the log and kept in the prepared metadata.
  assert "Skipped 1 unreadable GoEmotions train rows" in caplog.text
  assert builder.info.metadata["skipped"] == {"train": ["train.tsv:11: label ids '28' outside 0..27"], "validation": []}
  assert builder.info.metadata["emotions"] == list(goemotions.LabelSpaces(small_goemotions).emotions)


def test_data_source_gives_random_access_to_the_tsv_rows(small_goemotions, prepared_goemotions):
  _, data_dir = prepared_goemotions
  for split in ("train", "validation"):
    from_tsv = goemotions.load(small_goemotions, split)
    source = tfds.data_source(tfds_builders.GoEmotions.name, split=split, data_dir=str(data_dir), download=False)
    assert len(source) == len(from_tsv)
    for index in (len(source) - 1, 0, 17):  # out of order: random access, and TSV order kept
      example = source[index]
      assert example["text"].decode() == from_tsv.arrays["text"][index]
      assert example["comment_id"].decode() == from_tsv.arrays["id"][index]
      np.testing.assert_array_equal(example["labels"], from_tsv.arrays["labels_28"][index])


def test_load_from_tfds_dir_equals_load_from_tsv(small_goemotions, prepared_goemotions):
  _, data_dir = prepared_goemotions
  for split, label_space in (("train", "ekman"), ("dev", "goemotions28")):
    from_tsv = goemotions.load(small_goemotions, split, label_space)
    from_tfds = goemotions.load(small_goemotions, split, label_space, tfds_dir=str(data_dir))
    assert from_tfds.class_names == from_tsv.class_names
    assert from_tfds.arrays.keys() == from_tsv.arrays.keys()
    for name in from_tsv.arrays:
      np.testing.assert_array_equal(from_tfds.arrays[name], from_tsv.arrays[name], err_msg=name)


def test_grain_batches_a_tfds_data_source(prepared_goemotions):
  _, data_dir = prepared_goemotions
  source = tfds.data_source(tfds_builders.GoEmotions.name, split="validation", data_dir=str(data_dir), download=False)

  def to_model_row(example):
    return {"labels": example["labels"].astype(np.float32), "text": example["text"].decode()}

  batches = list(grain.MapDataset.source(source).map(to_model_row).batch(32))
  assert [len(batch["labels"]) for batch in batches] == [32, 32, 32, 4]
  assert batches[0]["labels"].shape == (32, 28) and batches[0]["labels"].dtype == np.float32
  assert batches[0]["text"][5] == source[5]["text"].decode()
  _, multi_hot, _ = prepared.load_goemotions(data_dir, "validation")
  np.testing.assert_array_equal(np.concatenate([batch["labels"] for batch in batches]), multi_hot)


def test_second_prepare_reuses_the_files(small_goemotions, prepared_goemotions):
  builder, data_dir = prepared_goemotions
  prepared_path = Path(builder.data_path)
  written = {file.name: file.stat().st_mtime_ns for file in prepared_path.iterdir()}
  again = tfds_builders.prepare_goemotions(small_goemotions, data_dir)
  assert Path(again.data_path) == prepared_path
  assert {file.name: file.stat().st_mtime_ns for file in prepared_path.iterdir()} == written
  assert again.info.splits["train"].num_examples == TRAIN_ROWS


def test_manual_dir_idiom_and_optional_test_split(tmp_path):
  source = _copy_goemotions(tmp_path / "release", with_test_split=True)
  builder = tfds_builders.GoEmotions(data_dir=str(tmp_path / "tfds"), file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(source)))
  assert builder.info.splits["test"].num_examples == 40
  texts, multi_hot, ids = prepared.load_goemotions(tmp_path / "tfds", "test")
  assert (texts, ids) == (
    list(goemotions.load(source, "dev").arrays["text"][:40]),
    list(goemotions.load(source, "dev").arrays["id"][:40]),
  )
  assert multi_hot.shape == (40, 28)


def test_missing_or_unprepared_folders_say_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    tfds_builders.prepare_goemotions(tmp_path / "no_such_release", tmp_path / "tfds")
  assert not (tmp_path / "tfds").exists()  # nothing half-written
  (tmp_path / "empty_release").mkdir()
  with pytest.raises(FileNotFoundError, match="emotions.txt is missing"):
    tfds_builders.prepare_goemotions(tmp_path / "empty_release", tmp_path / "tfds")
  with pytest.raises(FileNotFoundError, match="No source folder to prepare from"):
    tfds_builders.GoEmotions(data_dir=str(tmp_path / "tfds"), file_format="array_record").download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "no_such_release"))
    )
  with pytest.raises(FileNotFoundError, match="python -m emojax.data.tfds_builders"):
    prepared.load_goemotions(tmp_path / "never_prepared", "train")


def test_fer2013_prepares_images_labels_and_train_duplicates(fer2013_root, tmp_path):
  source = tmp_path / "fer2013"
  for split in ("train", "validation"):
    for class_dir in sorted((fer2013_root / split).iterdir()):
      (source / split / class_dir.name).mkdir(parents=True)
      for file in sorted(class_dir.iterdir())[:2]:
        shutil.copy(file, source / split / class_dir.name / file.name)
  # One validation image that is a pixel copy of a training image.
  shutil.copy(next((source / "train" / "happy").iterdir()), source / "validation" / "happy" / "copy_of_train.jpg")
  builder = tfds_builders.prepare_fer2013(source, tmp_path / "tfds")
  assert sorted(builder.info.splits) == ["train", "validation"]
  from_folder = fer2013.load(source, "validation")
  source = prepared.data_source("fer2013", tmp_path / "tfds", "validation")
  examples = [source[i] for i in range(len(source))]
  np.testing.assert_array_equal(np.stack([e["image"] for e in examples]), from_folder.arrays["image"])
  np.testing.assert_array_equal([e["label"] for e in examples], from_folder.arrays["label"])
  np.testing.assert_array_equal(
    [e["is_train_duplicate"] for e in examples], ~from_folder.eval_subsets["without_train_duplicates"]
  )
  assert sum(e["is_train_duplicate"] for e in examples) == 1
