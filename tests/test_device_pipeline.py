"""The on-device input pipeline: the same batches as grain, the same training without augmentation, k steps per
dispatch, a bounded number of compiled programs, evaluation on device, and the choice between pipelines."""

import json

import jax
import ml_collections
import numpy as np
import pytest

from emojax import prediction, sharding, train
from emojax.data import device_pipeline, multimodal, pipeline, synthetic
from emojax.data.base import Dataset
from tests.conftest import tiny_config
from tests.test_text import _text_config, goemotions_root, needs_minilm  # noqa: F401 (a fixture)


def _token_dataset(num_rows=90, width=64, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, width, num_rows)
  mask = (np.arange(width)[None] < lengths[:, None]).astype(np.int32)
  return Dataset(
    {
      "input_ids": mask * rng.integers(1, 500, (num_rows, width)).astype(np.int32),
      "attention_mask": mask,
      "labels": rng.integers(0, 2, (num_rows, 5)).astype(np.float32),
    },
    tuple("abcde"),
    model_inputs=("input_ids", "attention_mask", "labels"),
    multi_label=True,
  )


def _config(**overrides):
  return tiny_config(**{"data.augment.enabled": False, **overrides})


@pytest.mark.parametrize("kind", ["faces", "tokens", "fusion_tuples"])
def test_device_batches_equal_grain_batches(kind):
  config = _config(**{"train.batch_size": 16})
  if kind == "faces":
    data = synthetic.load("train", 40)
  elif kind == "tokens":
    data = _token_dataset()
    config.data.bucket_by_length, config.data.bucket_window_batches = True, 2
  else:
    data = multimodal.synthetic_inputs("train", 40, seed=0)
  mesh = sharding.create_mesh(config.mesh)
  grain_feed = pipeline.GrainFeed(data, config, seed=3, start_step=0, mesh=mesh)
  device_data = device_pipeline.DeviceData(data, mesh)
  device_feed = device_pipeline.DeviceFeed(device_data, config, seed=3)
  step = 0
  for count in (1, 2, 1, 3):  # crosses epoch boundaries (40 // 16 = 2 full batches per epoch)
    want, _ = grain_feed.inputs(step, count)
    rows, width = device_feed.inputs(step, count)
    for j in range(count):
      got = device_pipeline.gather(device_data.arrays, rows[j], width, device_data.tuple_keys)
      assert set(got) == set(want)
      for key in want:  # grain pads a dispatch's token batches to its widest; the device cuts to the same width
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key][j]), err_msg=f"{key} step {step}")
    step += count


def test_batches_are_a_pure_function_of_seed_and_step():
  config = _config()
  data = synthetic.load("train", 100)
  device_data = device_pipeline.DeviceData(data, sharding.create_mesh(config.mesh))
  first = device_pipeline.DeviceFeed(device_data, config, seed=0)
  again = device_pipeline.DeviceFeed(device_data, config, seed=0)
  other = device_pipeline.DeviceFeed(device_data, config, seed=1)
  rows = np.asarray(first.inputs(0, 7)[0])
  np.testing.assert_array_equal(np.asarray(again.inputs(5, 2)[0]), rows[5:7])  # resumed at step 5
  assert not np.array_equal(np.asarray(other.inputs(0, 7)[0]), rows)
  epoch = rows.ravel()[:96]  # the first three batches of 32 are rows of one permutation of the 100
  assert len(set(epoch.tolist())) == 96


def _train_losses(workdir):
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [(r["step"], r["split"], r["loss"]) for r in records]


def _final_state(exp_config, workdir):
  exp = train.Experiment(exp_config, workdir, need_train_data=False)
  state, _ = exp.checkpointer.restore(exp.abstract_state, "latest")
  exp.checkpointer.close()
  return jax.tree.map(np.asarray, train.variables_of(state))


@pytest.mark.slow
def test_device_training_equals_grain_training_without_augmentation(tmp_path):
  common = {
    "train.num_steps": 12,
    "train.log_every_steps": 4,
    "checkpoint.every_steps": 12,
    "checkpoint.async_save": False,
  }
  device, grain = _config(**common, **{"data.pipeline": "device"}), _config(**common, **{"data.pipeline": "grain"})
  device_report = train.train_and_evaluate(device, tmp_path / "device")
  grain_report = train.train_and_evaluate(grain, tmp_path / "grain")
  assert device_report["input_pipeline"] == "device" and grain_report["input_pipeline"] == "grain"
  for (step, split, want), (_, _, got) in zip(_train_losses(tmp_path / "grain"), _train_losses(tmp_path / "device")):
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6), (step, split)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
    _final_state(device, tmp_path / "device"),
    _final_state(grain, tmp_path / "grain"),
  )
  assert device_report["all"]["accuracy"] == pytest.approx(grain_report["all"]["accuracy"], abs=1 / 96)


@pytest.mark.slow
def test_several_steps_per_dispatch_train_what_single_steps_train(tmp_path):
  common = {
    "train.num_steps": 10,
    "train.log_every_steps": 5,
    "checkpoint.every_steps": 10,
    "checkpoint.async_save": False,
    "model.block_dropout": (0.0,) * 4,
    "model.dense_dropout": 0.0,
  }
  single = train.train_and_evaluate(_config(**common, **{"train.steps_per_dispatch": 1}), tmp_path / "single")
  scanned = train.train_and_evaluate(_config(**common, **{"train.steps_per_dispatch": 4}), tmp_path / "scanned")
  for (step, split, want), (_, _, got) in zip(_train_losses(tmp_path / "single"), _train_losses(tmp_path / "scanned")):
    assert got == pytest.approx(want, rel=1e-4), (step, split)
  # Events every 5 steps with k = 4: dispatches of 4 and 1 steps, so exactly two loop lengths were compiled.
  assert scanned["compiled_train_programs"] == 2 and single["compiled_train_programs"] == 1


@pytest.mark.slow
def test_sharded_meshes_train_what_data_parallelism_trains(tmp_path):
  """FSDP and tensor-parallel meshes fed by the device pipeline (augmentation on) train what the data-parallel mesh
  trains: the augmentation draws do not depend on how the batch is split."""
  common = {
    "train.num_steps": 2,
    "train.log_every_steps": 1,
    "checkpoint.every_steps": 2,
    "checkpoint.async_save": False,
    "data.augment.enabled": True,
    "data.pipeline": "device",
    "sharding.fsdp_min_size": 256,
    "data.num_eval_examples": 32,
  }
  runs = {}
  # One sharded run covers both: parameters split over fsdp, kernels' output features over model.
  for name, mesh in (("data", {"data": 8}), ("sharded", {"data": 2, "fsdp": 2, "model": 2})):
    config = _config(**common)
    config.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": 1, "model": 1, **mesh})
    config.sharding.strategy = "fsdp" if name == "sharded" else "replicate"
    train.train_and_evaluate(config, tmp_path / name)
    runs[name] = _train_losses(tmp_path / name)
  for (step, split, want), (_, _, got) in zip(runs["data"], runs["sharded"]):
    assert got == pytest.approx(want, rel=1e-3), (step, split)  # per-shard summation order


def test_dispatch_lengths_land_on_every_event():
  steps, step = [], 0
  while step < 23:
    count = train.dispatch_length(step, 4, 23, (5, 10, 0))
    steps.append(count)
    step += count
  ends = np.cumsum(steps)
  assert set(steps) <= {1, 4} and {5, 10, 15, 20, 23} <= set(ends.tolist())


@pytest.mark.slow
def test_evaluation_on_device_equals_evaluation_on_the_host(tmp_path):
  config = _config(**{"data.pipeline": "device"})
  exp = train.Experiment(config, tmp_path, need_train_data=False)
  assert exp.predictor.device_data is not None
  on_device = exp.predict(exp.state)
  on_host = prediction.predict(
    exp.predict_step, train.variables_of(exp.state), exp.eval_data, exp.mesh, config.eval.batch_size
  )
  np.testing.assert_allclose(on_device["logits"], on_host["logits"], rtol=1e-5, atol=1e-6)
  exp.checkpointer.close()


@pytest.mark.slow
@needs_minilm
def test_token_widths_bound_the_compiled_programs_over_an_epoch(goemotions_root, tmp_path):  # noqa: F811
  # 256 rows, batch 32: one full epoch is 8 steps; lengths vary, so batches need all three widths.
  config = _text_config(
    goemotions_root,
    **{"train.num_steps": 8, "data.token_widths": (16, 32, 64), "data.cache_dir": str(tmp_path / "cache")},
  )
  report = train.train_and_evaluate(config, tmp_path / "run")
  assert report["input_pipeline"] == "device"
  assert 1 <= report["compiled_train_programs"] <= 3
  assert 1 <= report["compiled_eval_programs"] <= 3


def test_pipeline_choice_and_its_errors():
  faces = synthetic.load("validation", 8)
  face_config = _config().data
  assert device_pipeline.resolve(faces, face_config) == "device"
  face_config.pipeline = "grain"
  assert device_pipeline.resolve(faces, face_config) == "grain"
  face_config.pipeline = "tpu"
  with pytest.raises(ValueError, match="config.data.pipeline='tpu'"):
    device_pipeline.resolve(faces, face_config)
  face_config.pipeline, face_config.device_max_bytes = "device", 1000
  with pytest.raises(ValueError, match="device_max_bytes"):
    device_pipeline.resolve(faces, face_config)
  # Speech with waveform augmentations and no prepared copies stays on the host under "auto".
  speech = ml_collections.ConfigDict(
    dict(
      name="ravdess",
      input="features",
      pipeline="auto",
      augment=dict(
        enabled=True, probability=0.5, pitch_shift_semitones=2.0, time_stretch=0.1, add_noise=True, gain_db=6.0
      ),
    )
  )
  features = Dataset(
    {"features": np.zeros((4, 10, 3), np.float32), "label": np.zeros(4, np.int32)},
    ("a",),
    model_inputs=("features", "label"),
  )
  assert device_pipeline.resolve(features, speech) == "grain"
  speech.pipeline = "device"
  with pytest.raises(ValueError, match="feature_copies"):
    device_pipeline.resolve(features, speech)
  assert device_pipeline.resolve(features, speech, training=False) == "device"  # evaluation needs no augmentation


def test_modality_dropout_on_device_keeps_one_present_modality():
  present = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0]] * 500, np.float32)
  kept = np.asarray(device_pipeline.drop_modalities(jax.random.key(0), present, rate=0.6))
  assert np.all(kept <= present)  # never brings back an absent modality
  assert np.all(kept[present.sum(1) > 0].sum(1) >= 1) and np.all(kept[present.sum(1) == 0] == 0)
  full = present[:, 0] * present[:, 1] * present[:, 2] == 1
  # Each of three present modalities survives with probability 0.4, plus the rescue when all three drop.
  assert kept[full].mean() == pytest.approx(0.4 + 0.6**3 / 3, abs=0.03)


@pytest.mark.slow
def test_speech_trains_on_device_from_prepared_feature_copies(small_ravdess, tmp_path):
  from tests.conftest import speech_config

  config = speech_config(
    small_ravdess,
    tmp_path / "cache",
    "model=cnn_lstm",
    **{
      "data.augment.feature_copies": 1,
      "train.num_steps": 2,
      "train.log_every_steps": 1,
      "checkpoint.every_steps": 2,
      "data.pipeline": "device",
      "model.lstm_features": 16,
      "model.conv_features": (8, 8, 8),
    },
  )
  data = train.load_split(config.data, "train")
  augment = device_pipeline.make_augmenter(config.data, data.num_classes)
  device_data = device_pipeline.DeviceData(data, sharding.create_mesh(config.mesh))
  rows, width = device_pipeline.DeviceFeed(device_data, config, seed=0).inputs(0, 1)
  batch = augment(jax.random.key(0), device_pipeline.gather(device_data.arrays, rows[0], width))
  assert "augmented_features" not in batch and batch["features"].shape == (8,) + data.arrays["features"].shape[1:]
  report = train.train_and_evaluate(config, tmp_path / "run")
  assert report["input_pipeline"] == "device" and report["final_step"] == 2
