import shutil

import ml_collections
import numpy as np
import pytest

from emojax import labels
from emojax.data import augment, fer2013, pipeline, synthetic
from tests.conftest import tiny_config


# --- FER2013, real files --------------------------------------------------------------------
@pytest.mark.slow
def test_fer2013_folder_layout_reads_real_validation(fer2013_root):
  data = fer2013.load(fer2013_root, "validation")
  assert len(data) == 3589 and data.arrays["image"].shape == (3589, 48, 48, 1)
  assert data.arrays["image"].dtype == np.uint8
  # Class folder -> Kaggle index: PublicTest has 467 angry and 895 happy faces.
  counts = np.bincount(data.arrays["label"], minlength=7)
  assert counts[labels.FER2013_FOLDER_TO_INDEX["angry"]] == 467
  assert counts[labels.FER2013_FOLDER_TO_INDEX["happy"]] == 895
  # 280 PublicTest images are pixel copies of training images.
  assert (~data.eval_subsets["without_train_duplicates"]).sum() == 280


def _copy_small_tree(fer2013_root, dst, per_class=3):
  for class_dir in sorted((fer2013_root / "train").iterdir()):
    (dst / "train" / class_dir.name).mkdir(parents=True)
    for f in sorted(class_dir.iterdir())[:per_class]:
      shutil.copy(f, dst / "train" / class_dir.name / f.name)


def test_corrupt_image_is_skipped_counted_and_named(fer2013_root, tmp_path, caplog):
  _copy_small_tree(fer2013_root, tmp_path)
  (tmp_path / "train" / "happy" / "Training_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
  fer2013._read_split.cache_clear()
  data = fer2013.load(tmp_path, "train")
  assert len(data) == 21
  assert len(data.skipped) == 1 and "Training_broken.jpg" in data.skipped[0]
  assert "Skipped 1 unreadable" in caplog.text and "Training_broken.jpg" in caplog.text


def test_csv_layout_matches_folder_layout_and_skips_bad_rows(fer2013_root, tmp_path):
  folder = fer2013.load(fer2013_root, "validation", mark_train_duplicates=False)
  rows = ["emotion,pixels,Usage"]
  for image, label in zip(folder.arrays["image"][:20], folder.arrays["label"][:20]):
    rows.append(f"{label},{' '.join(map(str, image.ravel()))},PublicTest")
  rows.append("3,1 2 3,PublicTest")  # too few pixels
  rows.append(f"9,{' '.join(['0'] * 2304)},PublicTest")  # label out of range
  rows.append(f"0,{' '.join(['0'] * 2304)},Training")
  (tmp_path / "fer2013.csv").write_text("\n".join(rows) + "\n")
  fer2013._read_split.cache_clear()
  data = fer2013.load(tmp_path, "validation", mark_train_duplicates=False)
  np.testing.assert_array_equal(data.arrays["image"], folder.arrays["image"][:20])
  np.testing.assert_array_equal(data.arrays["label"], folder.arrays["label"][:20])
  assert len(data.skipped) == 2 and ":22:" in data.skipped[0] and "outside 0..6" in data.skipped[1]
  assert len(fer2013.load(tmp_path / "fer2013.csv", "train", mark_train_duplicates=False)) == 1


def test_missing_or_mislaid_directory_names_the_expected_layout(tmp_path):
  fer2013._read_split.cache_clear()
  with pytest.raises(FileNotFoundError, match="does not exist.*image-folder layout"):
    fer2013.load(tmp_path / "nowhere", "train")
  (tmp_path / "images").mkdir()
  with pytest.raises(FileNotFoundError, match=r"No FER2013 'train' split.*found: \['images'\]"):
    fer2013.load(tmp_path, "train")
  (tmp_path / "train" / "smiling").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match="unexpected entries.*smiling"):
    fer2013.load(tmp_path, "train")


# --- synthetic default -------------------------------------------------------------------------
def test_synthetic_is_deterministic_and_balanced():
  a, b = synthetic.load("train", 300, seed=3), synthetic.load("train", 300, seed=3)
  np.testing.assert_array_equal(a.arrays["image"], b.arrays["image"])
  assert not np.array_equal(a.arrays["image"], synthetic.load("validation", 300, seed=3).arrays["image"])
  assert np.bincount(a.arrays["label"], minlength=7).min() > 20


def test_synthetic_expression_drives_the_label():
  """Mean images of two classes differ where the expression does (mouth), not elsewhere."""
  data = synthetic.load("train", 700)
  images, label_ids = data.arrays["image"][..., 0].astype(float), data.arrays["label"]
  happy = images[label_ids == labels.EKMAN7.index("happiness")].mean(0)
  surprise = images[label_ids == labels.EKMAN7.index("surprise")].mean(0)
  mouth, forehead = np.s_[32:40, 18:30], np.s_[4:10, 18:30]
  assert np.abs(happy - surprise)[mouth].mean() > 3 * np.abs(happy - surprise)[forehead].mean()


# --- grain pipeline ----------------------------------------------------------------------------
def test_train_iterator_resumes_with_identical_batches():
  config = tiny_config()
  data = synthetic.load("train", 100)
  iterator = pipeline.train_iterator(data, config, seed=0)
  for _ in range(5):  # crosses the epoch boundary (100 // 32 = 3 batches per epoch)
    next(iterator)
  expected = [next(iterator) for _ in range(3)]
  resumed = pipeline.train_iterator(data, config, seed=0, start_batch=5)
  for want in expected:
    got = next(resumed)
    np.testing.assert_array_equal(got["image"], want["image"])
    np.testing.assert_array_equal(got["label"], want["label"])


def test_epochs_are_reshuffled_and_cover_every_example():
  config = tiny_config(**{"data.augment.enabled": False, "train.batch_size": 10})
  data = synthetic.load("train", 30)
  iterator = pipeline.train_iterator(data, config, seed=0)
  first = np.concatenate([next(iterator)["image"].reshape(10, -1) for _ in range(3)])
  second = np.concatenate([next(iterator)["image"].reshape(10, -1) for _ in range(3)])
  original = data.arrays["image"].reshape(30, -1) / 255.0
  for epoch in (first, second):  # each epoch is a permutation of the data
    assert sorted(map(bytes, epoch.astype(np.float32))) == sorted(map(bytes, original.astype(np.float32)))
  assert not np.array_equal(first, second)


def test_eval_batches_visit_every_example_once_with_padding():
  data = synthetic.load("validation", 50)
  seen, valid = [], 0
  for batch, indices in pipeline.eval_batches(data, 16):
    assert batch["image"].shape == (16, 48, 48, 1)
    seen.extend(indices)
    valid += batch["valid"].sum()
  assert sorted(seen) == list(range(50)) and valid == 50


def test_augmentation_changes_images_within_range_and_rejects_bad_values():
  config = ml_collections.ConfigDict(
    dict(enabled=True, crop_padding=4, flip=True, rotation_degrees=10.0, contrast=0.2, brightness=0.1)
  )
  image = synthetic.load("train", 1).arrays["image"][0].astype(np.float32) / 255
  out = augment.augment_image(image, np.random.default_rng(0), config)
  assert out.shape == image.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
  assert np.abs(out - image).mean() > 0.01
  # Flip alone mirrors the image exactly.
  flip_only = ml_collections.ConfigDict(
    dict(crop_padding=0, flip=True, rotation_degrees=0.0, contrast=0.0, brightness=0.0)
  )
  flips = [augment.augment_image(image, np.random.default_rng(s), flip_only) for s in range(8)]
  assert any(np.allclose(f, image[:, ::-1]) for f in flips) and any(np.allclose(f, image) for f in flips)
  config.rotation_degrees = 400.0
  with pytest.raises(ValueError, match="rotation_degrees=400"):
    augment.validate(config)


def test_random_erasing_replaces_one_rectangle():
  image = np.full((48, 48, 1), 0.5, np.float32)
  for seed in range(20):
    out = augment.random_erase(image, np.random.default_rng(seed))
    changed = np.argwhere(out[..., 0] != 0.5)
    assert len(changed), "nothing erased"
    (top, left), (bottom, right) = changed.min(0), changed.max(0)
    area = (bottom - top + 1) * (right - left + 1)
    assert 0.02 * 48 * 48 * 0.8 <= area <= 0.33 * 48 * 48 * 1.2  # one rectangle of 2-33% of the face
    assert (out[top : bottom + 1, left : right + 1] != 0.5).mean() > 0.9  # filled with noise, nothing outside it
    assert 0 <= out.min() and out.max() <= 1
  config = ml_collections.ConfigDict(
    dict(crop_padding=0, flip=False, rotation_degrees=0.0, contrast=0.0, brightness=0.0, random_erasing=1.0)
  )
  assert (augment.augment_image(image, np.random.default_rng(0), config) != 0.5).any()
  config.random_erasing = 1.5
  with pytest.raises(ValueError, match="random_erasing=1.5"):
    augment.validate(config)


@pytest.mark.slow
def test_flip_test_time_augmentation_averages_the_mirror_image():
  import jax

  from emojax import prediction
  from emojax.models import get_model

  model = get_model(ml_collections.ConfigDict(dict(name="face.deep_cnn", width=0.125)), 7)
  batch = {"image": np.random.default_rng(0).random((3, 48, 48, 1), np.float32)}
  variables = model.init(jax.random.key(0), batch)
  plain = prediction.make_predict_step(model)(variables, batch)["logits"]
  mirror = prediction.make_predict_step(model)(variables, {"image": batch["image"][:, :, ::-1]})["logits"]
  tta = prediction.make_predict_step(model, tta_flip=True)(variables, batch)["logits"]
  expected = np.log((jax.nn.softmax(plain, -1) + jax.nn.softmax(mirror, -1)) / 2)
  np.testing.assert_allclose(tta, expected, rtol=1e-5, atol=1e-6)
  symmetric = {"image": np.concatenate([batch["image"][:, :, :24], batch["image"][:, :, 23::-1]], axis=2)}
  np.testing.assert_allclose(
    prediction.make_predict_step(model, tta_flip=True)(variables, symmetric)["logits"],
    jax.nn.log_softmax(prediction.make_predict_step(model)(variables, symmetric)["logits"]),
    rtol=1e-5,
    atol=1e-6,
  )


@pytest.mark.slow
def test_worker_processes_give_the_same_batches_as_threads():
  data = synthetic.load("train", 96)
  threads = pipeline.train_iterator(data, tiny_config(), seed=0)
  workers = pipeline.train_iterator(data, tiny_config(**{"data.worker_count": 2}), seed=0)
  for _ in range(4):
    np.testing.assert_array_equal(next(workers)["image"], next(threads)["image"])
