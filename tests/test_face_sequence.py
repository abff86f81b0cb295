"""Face clips: the synthetic clips, the clip readers (video files, frame folders, CK+), and CNNBiLSTM."""

from pathlib import Path

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from emojax import metrics, prediction, train
from emojax.data import clips, pipeline, synthetic
from emojax.models import get_model
from emojax.models.layers import AttentionPooling
from tests.conftest import tiny_config


def clip_config(root, **overrides):
  return ml_collections.ConfigDict(
    {**dict(root=str(root), clip_length=8, face_crop="none", num_folds=2, fold=0), **overrides}
  )


def write_video(path: Path, levels, size=(64, 80)):
  """An MPEG-4 video (decoded through the FFmpeg inside OpenCV's wheel) whose frame t is flat at levels[t]."""
  path.parent.mkdir(parents=True, exist_ok=True)
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (size[1], size[0]))
  assert writer.isOpened()
  for level in levels:
    writer.write(np.full(size + (3,), level, np.uint8))
  writer.release()


def write_frames(folder: Path, levels, size=(40, 40)):
  folder.mkdir(parents=True)
  for t, level in enumerate(levels):
    cv2.imwrite(str(folder / f"frame_{t:03d}.png"), np.full(size, level, np.uint8))


def test_synthetic_clips_move_from_neutral_to_the_expression():
  data = synthetic.load_clips("train", 12, seed=0, length=6, occlusion=0.0)
  assert data.arrays["clip"].shape == (12, 6, 48, 48, 1) and data.arrays["clip"].dtype == np.uint8
  assert data.model_inputs == ("clip", "clip_mask", "label") and data.arrays["clip_mask"].all()
  np.testing.assert_array_equal(
    data.arrays["clip"], synthetic.load_clips("train", 12, seed=0, length=6, occlusion=0.0).arrays["clip"]
  )
  happy = np.flatnonzero(data.arrays["label"] == 3)[0]
  first, last = data.arrays["clip"][happy, 0, :, :, 0], data.arrays["clip"][happy, -1, :, :, 0]
  assert np.abs(first.astype(int) - last.astype(int)).mean() > 2  # the face changed over the clip


def test_clip_reader_reads_videos_and_frame_folders_and_skips_bad_ones(tmp_path):
  write_video(tmp_path / "train" / "happy" / "v1.mp4", levels=range(20, 220, 10))
  write_frames(tmp_path / "train" / "sadness" / "seq1", levels=[10, 60, 110])  # shorter than clip_length
  (tmp_path / "train" / "anger").mkdir()
  (tmp_path / "train" / "anger" / "broken.mp4").write_bytes(b"not a video at all")
  (tmp_path / "train" / "anger" / "notes.txt").write_text("neither")
  (tmp_path / "train" / "neutral" / "empty").mkdir(parents=True)
  data = clips.load(clip_config(tmp_path), "train")

  assert data.arrays["clip"].shape == (2, 8, 48, 48, 1)
  names = [data.class_names[i] for i in data.arrays["label"]]
  assert names == ["happiness", "sadness"]
  video, frames = data.arrays["clip"][0, :, 0, 0, 0].astype(int), data.arrays["clip"][1, :, 0, 0, 0].astype(int)
  np.testing.assert_array_equal(data.arrays["clip_mask"][0], np.ones(8))
  assert video[0] < 40 and video[-1] > 190 and (np.diff(video) > 0).all()  # evenly spread over 20 frames
  np.testing.assert_array_equal(data.arrays["clip_mask"][1], [1, 1, 1, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(frames[:3], [10, 60, 110])
  assert (frames[3:] == 0).all()
  assert len(data.skipped) == 3 and any("broken.mp4" in s for s in data.skipped)
  assert any("no frame images" in s for s in data.skipped)


def test_clip_reader_errors_name_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    clips.load(clip_config(tmp_path / "missing"), "train")
  (tmp_path / "train" / "bored").mkdir(parents=True)
  with pytest.raises(ValueError, match="class folder"):
    clips.load(clip_config(tmp_path), "train")
  with pytest.raises(ValueError, match="face_crop"):
    clips.load(clip_config(tmp_path, face_crop="eyes"), "train")


def test_ck_plus_layout_splits_by_subject_and_drops_contempt(tmp_path):
  for subject, code in (("S005", 5), ("S010", 2), ("S011", 7)):
    write_frames(tmp_path / "cohn-kanade-images" / subject / "001", levels=[30, 90, 150, 200])
    (tmp_path / "Emotion" / subject / "001").mkdir(parents=True)
    (tmp_path / "Emotion" / subject / "001" / f"{subject}_001_00000004_emotion.txt").write_text(f"   {code:.7e}\n")
  validation = clips.load(clip_config(tmp_path, clip_length=4), "validation")  # subjects 0 and 2 (of 2 folds)
  assert [validation.class_names[i] for i in validation.arrays["label"]] == ["happiness", "surprise"]
  with pytest.raises(FileNotFoundError, match="No readable clips"):  # subject 1's only sequence is contempt
    clips.load(clip_config(tmp_path, clip_length=4), "train")


def test_haar_crop_falls_back_to_the_centre_and_counts_it():
  frames = [np.full((60, 100), 128, np.uint8)] * 3
  clip, mask, found = clips.to_clip(frames, 4, "haar")
  assert not found and clip.shape == (4, 48, 48, 1) and mask.tolist() == [1, 1, 1, 0]


@pytest.mark.slow
def test_cnn_bilstm_on_clips_has_hierarchical_attention_and_a_confidence_gate():
  model = get_model(ml_collections.ConfigDict(dict(name="face.cnn_bilstm", width=0.125, lstm_features=16)), 7)
  rng = np.random.default_rng(0)
  batch = {
    "clip": rng.random((2, 5, 48, 48, 1), np.float32),
    "clip_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.float32),
  }
  variables = model.init(jax.random.key(0), batch)
  out = model.apply(variables, batch)
  assert out["logits"].shape == (2, 7) and out["frame_logits"].shape == (2, 5, 7)
  np.testing.assert_allclose(out["frame_attention"].sum(-1), 1.0, rtol=1e-5)
  assert float(out["frame_attention"][1, 3:].max()) < 1e-6  # padded frames get no weight
  assert out["spatial_attention"].shape == (2, 5, 144)  # 12x12 positions within each frame
  np.testing.assert_allclose(out["spatial_attention"].sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(out["frame_gate"], jax.nn.softmax(out["frame_logits"]).max(-1), rtol=1e-5)
  image_out = model.apply(variables, {"image": batch["clip"][:, 0]})  # one image: its 12 feature-map rows
  assert image_out["frame_attention"].shape == (2, 12) and image_out["spatial_attention"].shape == (2, 12, 12)
  bad = get_model(ml_collections.ConfigDict(dict(name="face.cnn_bilstm", width=0.125, frame_gate="maybe")), 7)
  with pytest.raises(ValueError, match="frame_gate"):
    bad.init(jax.random.key(0), batch)


def test_attention_gate_suppresses_a_low_confidence_frame():
  pooling = AttentionPooling(hidden=8)
  x = jax.random.normal(jax.random.key(0), (1, 3, 4))
  mask = jnp.ones((1, 3), bool)
  params = pooling.init(jax.random.key(1), x, mask)
  _, plain = pooling.apply(params, x, mask)
  _, gated = pooling.apply(params, x, mask, jnp.array([[1.0, 1e-4, 1.0]]))
  assert float(gated[0, 1]) < 1e-3 < float(plain[0, 1])
  np.testing.assert_allclose(gated.sum(), 1.0, rtol=1e-5)
  np.testing.assert_allclose(
    gated[0, [0, 2]] / gated[0, [0, 2]].sum(), plain[0, [0, 2]] / plain[0, [0, 2]].sum(), rtol=1e-4
  )


def test_clip_augmentation_moves_every_frame_the_same_way():
  config = tiny_config("data=synthetic_clips,runlocal").data.augment
  frame = synthetic.load("train", 1).arrays["image"][0]
  example = {"clip": np.stack([frame] * 4), "label": 0}
  out = pipeline.augment_face(example, np.random.default_rng(3), config)["clip"]
  assert out.shape == (4, 48, 48, 1) and out.dtype == np.float32
  for t in range(1, 4):
    np.testing.assert_array_equal(out[t], out[0])
  assert not np.allclose(out[0], frame / 255.0)


def test_mirror_flips_clips_and_landmarks():
  clip = jnp.arange(2 * 3 * 5, dtype=jnp.float32).reshape(1, 2, 3, 5, 1)
  points = jnp.array([[[0.2, 0.3]]])
  mirrored = prediction.mirror({"clip": clip, "landmarks": points, "image": clip[:, 0]})
  np.testing.assert_array_equal(mirrored["clip"][0, 1, 2], clip[0, 1, 2, ::-1])
  np.testing.assert_allclose(mirrored["landmarks"], [[[0.8, 0.3]]])
  with pytest.raises(ValueError, match="no image or clip"):
    prediction.mirror({"audio": clip})


@pytest.mark.slow
def test_cnn_bilstm_trains_on_synthetic_clips(tmp_path):
  config = tiny_config(
    "model=cnn_bilstm,data=synthetic_clips,runlocal",
    **{
      "data.num_train_examples": 64,
      "data.num_eval_examples": 32,
      "data.clip_length": 4,
      "model.lstm_features": 16,
      "train.batch_size": 16,
      "train.num_epochs": 1.0,
      "eval.batch_size": 16,
    },
  )
  result = train.train_and_evaluate(config, tmp_path)
  assert "auxiliary_cross_entropy" in (tmp_path / "metrics.jsonl").read_text()
  assert 0.0 <= result["all"]["accuracy"] <= 1.0 and (tmp_path / "eval" / "report.json").is_file()


def test_report_measures_attention_on_damaged_frames():
  data = synthetic.load_clips("validation", 4, length=3)
  data.arrays["damaged"][:] = [[True, False, False]] * 4
  outputs = {
    "logits": np.eye(7)[data.arrays["label"]],
    "frame_attention": np.tile([0.1, 0.3, 0.6], (4, 1)),
    "frame_gate": np.tile([0.2, 0.9, 0.7], (4, 1)),
  }
  report = metrics.evaluate_outputs(outputs, data)["all"]
  assert report["mean_attention_damaged_frames"] == pytest.approx(0.1)
  assert report["mean_attention_clean_frames"] == pytest.approx(0.45)
  assert report["mean_gate_damaged_frames"] == pytest.approx(0.2) and report["accuracy"] == 1.0
