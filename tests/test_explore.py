"""`emojax explore` on small generated corpora with planted problems, and the data-quality switches it feeds.

Each corpus is written in the real layout (FER2013 class folders, RAVDESS file names, GoEmotions TSVs, the
CMU-MOSI feature files) with known duplicates, conflicting labels, blank images and unusable files, and the
report has to count exactly those and write every file it promises.
"""

import json
import re
import shutil

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import soundfile
from PIL import Image

from emojax import losses
from emojax.data import fer2013, load_split, quality
from emojax.explore import explore, main
from tests.conftest import SHARED_DATA


# ----------------------------------------------------------------------------------------------
# Generated corpora.
# ----------------------------------------------------------------------------------------------
def _noise_face(rng):
  return rng.integers(30, 220, size=(48, 48), dtype=np.uint8)  # room for a brightness shift without clipping


@pytest.fixture(scope="module")
def fer_tree(tmp_path_factory):
  """train: 4 angry, 4 happy, 3 sad (+ planted rows), validation: 2 per class (+ planted rows).

  Planted: train copies A (angry, angry) and B (angry, happy: conflicting); validation copies of train's C (same
  label) and D (other label); a blank train image; a validation image that is train's E brightened by 6 (a near,
  not exact, duplicate).
  """
  root = tmp_path_factory.mktemp("fer")
  rng = np.random.default_rng(0)

  def put(split, cls, name, image):
    folder = root / split / cls
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{name}.png")  # lossless: copies stay pixel-identical

  for cls, count in (("angry", 4), ("happy", 4), ("sad", 3)):
    for i in range(count):
      put("train", cls, f"Training_{cls}{i}", _noise_face(rng))
    for i in range(2):
      put("validation", cls, f"PublicTest_{cls}{i}", _noise_face(rng))
  a, b, c, d, e = (_noise_face(rng) for _ in range(5))
  put("train", "angry", "Training_A1", a)
  put("train", "angry", "Training_A2", a)
  put("train", "angry", "Training_B1", b)
  put("train", "happy", "Training_B2", b)
  put("train", "sad", "Training_C", c)
  put("validation", "sad", "PublicTest_C", c)
  put("train", "happy", "Training_D", d)
  put("validation", "angry", "PublicTest_D", d)
  put("train", "sad", "Training_blank", np.zeros((48, 48), np.uint8))
  put("train", "happy", "Training_E", e)
  put("validation", "happy", "PublicTest_E", (e.astype(int) + 6).astype(np.uint8))
  return root


def _files_written(out, paths):
  expected = {"report.html", "report.md", "summary.json"}
  assert expected <= {p.name for p in paths}
  for path in paths:
    assert path.is_file() and path.stat().st_size > 0, path
  markdown = (out / "report.md").read_text()
  linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
  assert linked and all((out / name).is_file() for name in linked)
  assert sorted(linked) == sorted(p.name for p in paths if p.suffix == ".png")
  page = (out / "report.html").read_text()
  # Self-contained: every figure embedded, nothing fetched.
  assert page.count("src='data:image/png;base64,") == len(linked)
  assert not re.search(r"(src|href)=['\"](?!data:|#)", page)
  return json.loads((out / "summary.json").read_text())


# ----------------------------------------------------------------------------------------------
# Faces.
# ----------------------------------------------------------------------------------------------
def test_face_report_counts_duplicates_conflicts_and_blanks(fer_tree, tmp_path):
  out = tmp_path / "fer"
  summary = _files_written(out, explore("fer2013", out, root=str(fer_tree), sample=10, quiet=True))
  assert summary["class_counts"]["train"]["anger"] == 4 + 3 and summary["class_counts"]["train"]["happiness"] == 4 + 3
  assert summary["class_counts"]["train"]["sadness"] == 3 + 2
  assert summary["class_counts"]["validation"] == {
    "anger": 3,
    "disgust": 0,
    "fear": 0,
    "happiness": 3,
    "sadness": 3,
    "surprise": 0,
    "neutral": 0,
  }
  exact = summary["exact_duplicates"]
  assert exact["within"]["train"] == {"groups": 2, "images": 4, "redundant_copies": 2, "conflicting_groups": 1}
  assert exact["within"]["validation"]["groups"] == 0
  cross = {
    tuple(sorted(m[1] for m in g["members"])): g["conflicting"] for g in exact["groups"] if len(g["splits"]) == 2
  }
  assert cross == {("angry/PublicTest_D", "happy/Training_D"): True, ("sad/PublicTest_C", "sad/Training_C"): False}
  across = exact["across"]["validation"]
  assert across["images_with_train_copy"] == 2 and across["with_another_label"] == 1
  assert across["matches_without_train_duplicates_subset"]  # one mechanism with the evaluator's subset
  assert summary["near_constant"]["counts"] == {"train": 1, "validation": 0}
  near = summary["near_duplicates"]
  assert near["pairs"] == {"train - validation": {"pairs": 1, "conflicting": 0}}
  assert near["validation_images_near_a_train_image"] == 1
  assert near["groups"][0]["members"] == [
    ["train", "happy/Training_E", "happiness"],
    ["validation", "happy/PublicTest_E", "happiness"],
  ]
  assert set(summary["face_detector"]) == {"train", "validation"}
  assert "face detector on 10 of 19 train images" in " ".join(summary["sampling"])


def test_clip_report_reads_frame_folders_and_counts_copied_clips(tmp_path):
  """Clips (folders of frames) in class folders; one validation clip is a frame-for-frame copy of a train clip."""
  root, rng = tmp_path / "clips", np.random.default_rng(1)

  def put(split, cls, name, frames):
    folder = root / split / cls / name
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
      Image.fromarray(frame).save(folder / f"{index:03d}.png")

  copied = [_noise_face(rng) for _ in range(3)]
  for split, count in (("train", 3), ("validation", 1)):
    for cls in ("happiness", "sadness"):
      for i in range(count):
        put(split, cls, f"clip{i}", [_noise_face(rng) for _ in range(3)])
  put("train", "happiness", "copied", copied)
  put("validation", "sadness", "copied", copied)
  out = tmp_path / "report"
  summary = _files_written(out, explore("clips", out, root=str(root), sample=10, quiet=True))
  assert summary["class_counts"]["train"]["happiness"] == 4 and summary["class_counts"]["validation"]["sadness"] == 2
  across = summary["exact_duplicates"]["across"]["validation"]
  assert (across["images_with_train_copy"], across["with_another_label"]) == (1, 1)
  assert summary["clips_without_face"] == {"train": 7, "validation": 3}  # noise has no face


# ----------------------------------------------------------------------------------------------
# Speech.
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tone_ravdess(tmp_path_factory):
  """5 actors x (neutral normal, happy normal, happy strong, angry strong): 1 s tones whose pitch and loudness
  follow the emotion, plus a misnamed file and a silent one."""
  root = tmp_path_factory.mktemp("ravdess_tones")
  rate, rng = 16000, np.random.default_rng(0)
  t = np.arange(rate) / rate
  for actor in range(1, 6):
    folder = root / f"Actor_{actor:02d}"
    folder.mkdir()
    for emotion, intensity, pitch, gain in (
      ("01", "01", 120, 0.1),
      ("03", "01", 220, 0.2),
      ("03", "02", 260, 0.4),
      ("05", "02", 300, 0.5),
    ):
      wave = gain * np.sin(2 * np.pi * (pitch + 10 * actor) * t) * np.hanning(rate) + 0.002 * rng.normal(size=rate)
      soundfile.write(folder / f"03-01-{emotion}-{intensity}-01-01-{actor:02d}.wav", wave.astype(np.float32), rate)
  soundfile.write(root / "Actor_01" / "not-a-ravdess-name.wav", np.zeros(rate, np.float32), rate)
  soundfile.write(root / "Actor_02" / "03-01-04-01-01-01-02.wav", np.zeros(rate, np.float32), rate)
  return root


def test_speech_report_counts_by_emotion_speaker_intensity_and_names_skips(tone_ravdess, tmp_path):
  out = tmp_path / "ravdess"
  summary = _files_written(out, explore("ravdess", out, root=str(tone_ravdess), sample=50, quiet=True))
  counts = summary["counts_emotion_speaker"]
  assert counts["happy"] == {f"{a:02d}": 2 for a in range(1, 6)} and counts["angry"]["03"] == 1
  assert counts["sad"]["02"] == 1 and counts["calm"] == {f"{a:02d}": 0 for a in range(1, 6)}
  assert summary["counts_emotion_intensity"]["happy"] == {"normal": 5, "strong": 5}
  assert summary["counts_emotion_intensity"]["neutral"] == {"normal": 5, "strong": 0}
  assert summary["split_speakers"] == {"train": ["01", "02", "03", "04"], "validation": ["05"]}
  skipped = {row[0].rsplit("/", 1)[-1]: row[1] for row in summary["skipped"]["files"]}
  assert set(skipped) == {"not-a-ravdess-name.wav", "03-01-04-01-01-01-02.wav"}
  assert skipped["03-01-04-01-01-01-02.wav"].startswith("silent")
  assert summary["signal"]["duration_s"]["median"] == pytest.approx(1.0)
  pitch = summary["pitch_energy"]
  assert pitch["neutral"]["median_pitch_hz"] < pitch["happy"]["median_pitch_hz"] < pitch["angry"]["median_pitch_hz"]
  assert 0 <= summary["speaker_variance"]["variance_share_speaker_mean"] <= 1
  assert set(summary["speaker_variance"]["probes"]) == {
    "speaker identity (stratified 5-fold)",
    "emotion, unseen speakers (speaker folds)",
    "emotion, unseen speakers, per-speaker standardised",
  }


# ----------------------------------------------------------------------------------------------
# Text.
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_goemotions(tmp_path_factory):
  root = tmp_path_factory.mktemp("goemotions")
  for name in ("emotions.txt", "ekman_mapping.json", "sentiment_dict.json"):  # the release's label files
    shutil.copy(SHARED_DATA / "goemotions" / name, root / name)
  emotions = (root / "emotions.txt").read_text().split()
  ids = {name: i for i, name in enumerate(emotions)}
  train = [
    ("I love this so much", "love"),
    ("I love this so much", "love"),  # duplicate, same labels
    ("Thanks [NAME]!", "gratitude"),
    ("Thanks [NAME]!", "gratitude,joy"),  # duplicate, conflicting
    ("What a scary movie 😱", "fear"),
    ("This is so sad", "sadness"),
    ("see https://x.org", "neutral"),
    ("I am so happy and proud of [NAME]", "joy,pride"),
    ("ok then", "neutral"),
    ("[RELIGION] is fine", "neutral"),
  ]
  dev = [("This is so sad", "grief"), ("I love this so much", "love"), ("Why though?", "confusion,curiosity")]
  for file, rows in (("train.tsv", train), ("dev.tsv", dev)):
    lines = [
      f"{t}\t{','.join(str(ids[n]) for n in labels.split(','))}\tid{file[0]}{i}" for i, (t, labels) in enumerate(rows)
    ]
    (root / file).write_text("\n".join(lines) + "\n", encoding="utf-8")
  return root


def test_text_report_counts_labels_duplicates_masks_and_conflicts(tiny_goemotions, tmp_path):
  out = tmp_path / "goemotions"
  summary = _files_written(out, explore("goemotions", out, root=str(tiny_goemotions), quiet=True))
  counts = summary["label_counts"]
  assert counts["28 labels"]["train"]["neutral"] == 3 and counts["28 labels"]["train"]["love"] == 2
  assert counts["ekman"]["train"]["happiness"] == 5  # love x2, gratitude x2, joy+pride once
  assert counts["labels_per_row"]["train"] == {"1": 8, "2": 2, "3": 0, "4": 0, "5": 0}
  duplicates = summary["duplicates"]
  assert duplicates["within"]["train"] == {"groups": 1, "rows": 2, "conflicting_groups": 1}
  cross = [g for g in duplicates["groups"] if len(g["splits"]) == 2]
  assert sorted(g["text"] for g in cross) == ["I love this so much", "This is so sad"]
  assert duplicates["across"]["validation"] == {"rows_with_train_copy": 2, "with_another_label": 1}
  surface = summary["surface"]["train"]
  assert (surface["rows_with_[NAME]"], surface["rows_with_[RELIGION]"]) == (3, 1)
  assert (surface["rows_with_emoji"], surface["rows_with_url"]) == (1, 1)
  assert summary["token_lengths"]["truncated_share"] == {"train": 0.0, "validation": 0.0}
  assert summary["distinctive_words"]["love"][0][0] == "love"
  assert summary["vader"]["sadness"]["median_compound"] < 0 < summary["vader"]["love"]["median_compound"]


def test_labelled_text_report_reads_one_csv(tmp_path):
  # The labelled CSV/TSV text reader arrives with the inference work (issue 16); until it has landed, skip.
  pytest.importorskip("emojax.data.labelled_text", reason="emojax/data/labelled_text.py has not landed yet")
  csv_file = tmp_path / "corpus.csv"
  csv_file.write_text(
    "text,emotion\nI am so happy,joy\nI am so happy,sadness\nthis is awful,disgust\nwhat a day,love\nwhy me,sad\n",
    encoding="utf-8",
  )
  out = tmp_path / "report"
  paths = explore("labelled_text", out, root=str(csv_file), quiet=True, text_column="text", label_column="emotion")
  summary = _files_written(out, paths)
  assert summary["splits"] == ["all"]
  assert (
    summary["label_counts"]["7 labels"]["all"]["sadness"] == 2
    and summary["label_counts"]["7 labels"]["all"]["happiness"] == 1
  )
  assert summary["duplicates"]["within"]["all"] == {"groups": 1, "rows": 2, "conflicting_groups": 1}
  assert main(["--data", "labelled_text", "--root", str(csv_file), "--out", str(out)]) == 2  # no columns named


# ----------------------------------------------------------------------------------------------
# Aligned sets.
# ----------------------------------------------------------------------------------------------
def test_aligned_report_probes_each_modality(tmp_path):
  root = tmp_path / "cmu_mosi"
  rng = np.random.default_rng(0)
  rows, videos = 120, np.repeat(np.arange(12), 10)
  label = rng.integers(0, 2, rows)
  signal = {"text": 3.0, "audio": 0.0, "video": 1.0}
  for modality, strength in signal.items():
    (root / modality).mkdir(parents=True)
    features = rng.normal(size=(rows, 6)) + strength * label[:, None]
    if modality == "video":
      features[:, 0] = 0.5  # a constant column
    np.savetxt(
      root / modality / f"{modality}_train0.csv", np.column_stack([features, label]), delimiter=",", fmt="%.5f"
    )
  (root / "transcripts.csv").write_text(
    "".join(f'"v{v}_{i}","TEXT {i}","{v}","{y}"\n' for i, (v, y) in enumerate(zip(videos, label)))
  )
  text = np.loadtxt(root / "text" / "text_train0.csv", delimiter=",")[:, :-1]  # the index repeats the text features
  np.savetxt(root / "text_train.csv", np.column_stack([np.arange(rows), text]), delimiter=",", fmt="%.5f")
  out = tmp_path / "report"
  summary = _files_written(out, explore("cmu_mosi", out, root=str(root), quiet=True))
  assert summary["rows"] == rows and summary["groups"] == 12
  probes = summary["probes"]
  text, audio = probes["text (100-d utterance CNN)"], probes["audio (openSMILE functionals)"]
  assert text["accuracy"] > 0.9 and audio["accuracy"] < 0.75 and "all concatenated" in probes
  assert summary["modalities"]["video (100-d 3D-CNN)"]["constant_columns"] == ["video_0"]


def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys):
  assert main(["--data", "imagenet", "--out", str(tmp_path)]) == 2
  assert "unknown --data 'imagenet'" in capsys.readouterr().err
  assert main(["--data", "fer2013", "--root", str(tmp_path / "missing"), "--out", str(tmp_path), "--quiet"]) == 2
  error = capsys.readouterr().err.strip()
  assert error.startswith("emojax explore: FER2013 root") and "Traceback" not in error
  from emojax import cli

  assert "explore" in cli.SUBCOMMANDS and "explore" in cli.usage()


# ----------------------------------------------------------------------------------------------
# Data-quality switches (config.data.drop_duplicates, config.data.class_balance).
# ----------------------------------------------------------------------------------------------
def _fer_config(root, **data):
  from configs.face_cnn import get_config

  config = get_config("data=fer2013")
  config.data.root = str(root)
  for key, value in data.items():
    config.data[key] = value
  return config


def test_every_config_has_the_quality_switches_off():
  from configs import fusion, multimodal, speech, text
  from configs.face_cnn import get_config

  for config in (get_config(), speech.get_config(), text.get_config(), fusion.get_config(), multimodal.get_config()):
    assert (config.data.drop_duplicates, config.data.class_balance) == ("none", "none")


def test_drop_duplicates_from_train_or_from_validation(fer_tree):
  fer2013._read_split.cache_clear()
  plain_train = load_split(_fer_config(fer_tree).data, "train")
  plain_validation = load_split(_fer_config(fer_tree).data, "validation")
  assert "data_quality" not in plain_train.metadata

  train = load_split(_fer_config(fer_tree, drop_duplicates="from_train").data, "train")
  record = train.metadata["data_quality"]
  assert len(train) == len(plain_train) - 2
  assert sorted(record["dropped_ids"]) == ["happy/Training_D", "sad/Training_C"]
  assert (record["drop_duplicates"], record["compared_with"], record["dropped"]) == ("from_train", "validation", 2)
  assert record["dropped_with_other_label"] == 1
  # from_train leaves the evaluation split whole.
  whole = load_split(_fer_config(fer_tree, drop_duplicates="from_train").data, "validation")
  assert len(whole) == len(plain_validation)

  validation = load_split(_fer_config(fer_tree, drop_duplicates="from_validation").data, "validation")
  # One mechanism: what remains is exactly the evaluator's without_train_duplicates subset.
  kept = plain_validation.eval_subsets["without_train_duplicates"]
  np.testing.assert_array_equal(validation.arrays["id"], plain_validation.arrays["id"][kept])
  assert validation.eval_subsets["without_train_duplicates"].all()
  assert validation.metadata["data_quality"]["dropped_ids"] == ["angry/PublicTest_D", "sad/PublicTest_C"]
  with pytest.raises(ValueError, match="config.data.drop_duplicates='train'"):
    load_split(_fer_config(fer_tree, drop_duplicates="train").data, "train")


def test_resample_is_a_fixed_seeded_oversampling(fer_tree):
  config = _fer_config(fer_tree, class_balance="resample").data
  plain = load_split(_fer_config(fer_tree).data, "train")
  first, again = load_split(config, "train"), load_split(config, "train")
  counts = np.bincount(first.arrays["label"], minlength=7)
  present = np.bincount(plain.arrays["label"], minlength=7) > 0
  assert (counts[present] == counts.max()).all() and (counts[~present] == 0).all()
  np.testing.assert_array_equal(first.arrays["id"], again.arrays["id"])  # a pure function of the seed
  assert set(first.arrays["id"]) == set(plain.arrays["id"])  # every row kept
  record = first.metadata["data_quality"]
  assert record["class_counts_after"] == counts.tolist() and record["rows"] == len(first)
  config.class_balance_seed = 1
  assert not np.array_equal(load_split(config, "train").arrays["id"], first.arrays["id"])
  assert len(load_split(config, "validation")) == len(load_split(_fer_config(fer_tree).data, "validation"))


def test_reweight_gives_the_loss_balanced_class_weights(fer_tree):
  from configs.face_cnn import get_config

  train = load_split(_fer_config(fer_tree, class_balance="reweight").data, "train")
  counts = np.bincount(train.arrays["label"], minlength=7)
  expected = np.where(counts > 0, len(train) / (3 * np.maximum(counts, 1)), 0)
  np.testing.assert_allclose(train.metadata["class_weights"], expected, rtol=1e-6)
  loss_fn = losses.make_loss(get_config().train, train)
  logits = jnp.array(np.random.default_rng(0).normal(size=(4, 7)), jnp.float32)
  batch = {"label": jnp.array([0, 3, 3, 4])}
  loss, metrics = loss_fn({"logits": logits}, batch)
  per_example = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  weights = expected[np.array(batch["label"])]
  np.testing.assert_allclose(loss, (per_example * weights).sum() / weights.sum(), rtol=1e-5)
  np.testing.assert_allclose(metrics["cross_entropy"], per_example.mean(), rtol=1e-5)  # logged plain
  plain, _ = losses.make_loss(get_config().train, load_split(_fer_config(fer_tree).data, "train"))(
    {"logits": logits}, batch
  )
  np.testing.assert_allclose(plain, per_example.mean(), rtol=1e-5)


def test_class_balance_refuses_multi_label_data(tiny_goemotions):
  import ml_collections

  from emojax.data import goemotions

  dataset = goemotions.load(tiny_goemotions, "train")
  config = ml_collections.ConfigDict(dict(class_balance="resample", drop_duplicates="none"))
  with pytest.raises(ValueError, match="class_weight_power"):
    quality.apply(dataset, config, "train", lambda split: dataset)
