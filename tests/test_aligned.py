"""Truly aligned fusion: RAVDESS-AV and CMU-MOSI joins on the real files, missing halves counted, splits that never
share a speaker or a video, the utterance-context graph's edges and readout, bootstrap intervals, and a tiny
aligned training run whose loss falls."""

import csv
import json
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from emojax import labels as labels_lib
from emojax.data import aligned, load_split, mosi, ravdess_av
from emojax.models import context_graph
from tests.conftest import _shared_dataset


@pytest.fixture(scope="module")
def ravdess_av_root():
  return _shared_dataset("ravdess_av")


@pytest.fixture(scope="module")
def mosi_root():
  return _shared_dataset("cmu_mosi")


def _ravdess_config(root, **fields):
  config = ml_collections.ConfigDict(
    dict(
      name="multimodal_ravdess_av",
      root=str(root),
      modalities=("face", "speech"),
      labels="native",
      calm="neutral",
      num_folds=5,
      fold=4,
      validation_speakers=(),
      exports=dict(face="", speech=""),
    )
  )
  config.update(fields)
  return config


def _mosi_config(root, **fields):
  config = ml_collections.ConfigDict(
    dict(
      name="multimodal_mosi",
      root=str(root),
      modalities=("text", "audio", "video"),
      validation_fraction=0.2,
      split_seed=0,
      validation_videos=(),
      tokenizer="",
      max_length=64,
      context=False,
      max_utterances=0,
      exports=dict(text="", audio="", video="", transcript=""),
    )
  )
  config.update(fields)
  return config


def _export(run, split, ids, class_names, dim=6, seed=0):
  """A speech run's export as `--mode=export` writes it, for the given recordings."""
  rng = np.random.default_rng(seed)
  labels = [class_names.index(ravdess_av.recording(i)[2]) for i in ids]
  (run / "export").mkdir(parents=True, exist_ok=True)
  np.savez(
    run / "export" / f"{split}.npz",
    id=np.array(ids),
    label=np.array(labels, np.int32),
    class_names=np.array(class_names),
    embedding=rng.standard_normal((len(ids), dim)).astype(np.float32),
    logits=rng.standard_normal((len(ids), len(class_names))).astype(np.float32),
  )


# ------------------------------------------------------------------------------------------------
# RAVDESS-AV: action units joined to the audio of the same recording.
# ------------------------------------------------------------------------------------------------
def test_ravdess_av_joins_every_real_recording_and_splits_by_actor(ravdess_av_root, tmp_path):
  stems, features, columns, skipped = ravdess_av.read_action_units(str(ravdess_av_root / ravdess_av.ACTION_UNITS_FILE))
  assert len(stems) == 1200 and features.shape == (1200, 35) and not skipped
  assert columns[0] == "AU01_r_mean" and columns[-1] == "AU45_c_mean"
  audio = sorted(p.stem for p in (ravdess_av_root.parent / "ravdess").glob("Actor_*/*.flac"))
  assert sorted(stems) == audio  # the action units name exactly the audio files' recordings
  # A video's name and the audio's meet on the same recording.
  assert ravdess_av.recording("01-01-05-02-01-01-12") == ("03-01-05-02-01-01-12", "12", "angry")
  with pytest.raises(ValueError, match="emotion"):
    ravdess_av.recording("01-01-09-01-01-01-12")
  # Speech from a run's export, matched by name: every real recording gets both halves.
  run = tmp_path / "speech_run"
  names = ravdess_av.class_names(_ravdess_config(ravdess_av_root))
  actors = np.array([ravdess_av.recording(s)[1] for s in audio])
  held_out = np.isin(actors, ["17", "18", "19", "20"])
  _export(run, "train", [s for s, h in zip(audio, held_out) if not h], names)
  _export(run, "validation", [s for s, h in zip(audio, held_out) if h], names)
  config = _ravdess_config(ravdess_av_root, exports=dict(face="", speech=str(run)))
  train, validation = load_split(config, "train"), load_split(config, "validation")
  assert (len(train), len(validation)) == (960, 240)
  assert set(validation.arrays["group"]) == {"17", "18", "19", "20"} and not set(train.arrays["group"]) & {"17"}
  assert validation.arrays["present"].all() and validation.metadata["missing"] == {"face": 0, "speech": 0}
  example = validation[5]
  key = validation.arrays["id"][5]
  np.testing.assert_array_equal(example["face_features"], features[list(stems).index(key)])
  assert example["label"] == names.index(ravdess_av.recording(key)[2])
  # Standardisation statistics come from the training actors only, whichever split is read.
  mean = validation.metadata["model_kwargs"]["encoder_kwargs"]["face"]["input_mean"]
  np.testing.assert_allclose(mean, features[np.isin(list(stems), train.arrays["id"])].mean(0), rtol=1e-5)
  # Ekman-7 instead of RAVDESS's 8 classes: calm merged into neutral, or dropped.
  ekman = load_split(_ravdess_config(ravdess_av_root, modalities=("face",), labels="ekman7", calm="drop"), "validation")
  assert ekman.class_names == labels_lib.EKMAN7 and len(ekman) == 240 - 4 * 8  # 8 calm recordings per actor
  assert ekman.arrays["label"].max() == 6 and (ekman.arrays["label"] == labels_lib.EKMAN7.index("neutral")).sum() == 16
  # An export made with another actor split is refused, naming the fix.
  bad = tmp_path / "other_split"
  _export(bad, "validation", audio[:60], names)
  with pytest.raises(ValueError, match="same actor split"):
    load_split(_ravdess_config(ravdess_av_root, exports=dict(face="", speech=str(bad))), "validation")


def test_ravdess_av_counts_missing_halves_and_skips_bad_rows(ravdess_av_root, tmp_path):
  """A generated case: recordings without action units, without audio, and broken rows."""
  root = tmp_path / "ravdess_av"
  root.mkdir()
  with open(ravdess_av_root / ravdess_av.ACTION_UNITS_FILE, newline="") as f:
    rows = list(csv.reader(f))
  header = rows[0]
  real = [r for r in rows[1:] if r[0].endswith("-01")][:20] + [r for r in rows[1:] if r[0].endswith("-17")][:20]
  kept = real[:30]  # 10 recordings lose their face
  broken = [
    ["03-01-09-01-01-01-01"] + real[0][1:],  # emotion 09
    real[1][:10],  # too few columns
    [real[2][0]] + ["nan"] * 35,  # not a number
    real[3],
  ]  # a second row for one recording
  kept[0] = ["01" + kept[0][0][2:]] + kept[0][1:]  # named after the video file: still joins
  with open(root / ravdess_av.ACTION_UNITS_FILE, "w", newline="") as f:
    csv.writer(f).writerows([header] + kept + broken)
  names = ravdess_av.class_names(_ravdess_config(root))
  with_face = [ravdess_av.recording(r[0])[0] for r in kept]
  speech = [s for s in (ravdess_av.recording(r[0])[0] for r in real) if s not in with_face[:5]]  # 5 lose their voice
  run = tmp_path / "speech_run"
  for split, actor in (("train", "01"), ("validation", "17")):
    _export(run, split, [s for s in speech if s.endswith(actor)], names)
  config = _ravdess_config(root, validation_speakers=("17",), exports=dict(face="", speech=str(run)))
  data = {split: load_split(config, split) for split in ("train", "validation")}
  assert len(data["train"].skipped) == 4 and any("emotion part '09'" in s for s in data["train"].skipped)
  assert any("second row" in s for s in data["train"].skipped) and any("not finite" in s for s in data["train"].skipped)
  missing = {m: sum(d.metadata["missing"][m] for d in data.values()) for m in ("face", "speech")}
  assert missing == {"face": 10, "speech": 5}
  assert sum(len(d) for d in data.values()) == 40  # every recording that has either half is an example
  for d in data.values():
    present = d.arrays["present"]
    assert ((d.arrays["face_row"] >= 0) == (present[:, 0] > 0)).all()
    example = d[int(np.flatnonzero(present[:, 1] == 0)[0])] if (present[:, 1] == 0).any() else None
    if example is not None:
      assert not example["speech_embedding"].any()  # an absent half is zeros, never another row


# ------------------------------------------------------------------------------------------------
# CMU-MOSI: three feature rows and a transcript per utterance.
# ------------------------------------------------------------------------------------------------
def test_mosi_joins_the_real_feature_rows_to_their_transcripts(mosi_root):
  utterances = mosi.read(str(mosi_root))
  assert len(utterances.ids) == 1447 and not utterances.skipped
  assert all(has.all() for has in utterances.has.values())
  assert {m: f.shape[1] for m, f in utterances.features.items()} == {"text": 100, "audio": 73, "video": 100}
  row = list(utterances.ids).index("1DmNV9C1hbY_1")
  assert utterances.transcripts[row] == "BUT FOR THIS ONE I JUST DIDNT FEEL LIKE IT"
  assert (utterances.labels[row], utterances.videos[row], utterances.positions[row]) == (0, "1DmNV9C1hbY", 1)
  with open(mosi_root / mosi.TRANSCRIPT_INDEX, newline="") as f:
    index = [r for r in csv.reader(f)]
  pointer = next(r for r in index if int(float(r[0])) == 0)  # the row of text_train.csv naming transcript 0
  np.testing.assert_allclose(utterances.features["text"][row], [float(v) for v in pointer[1:]], atol=1e-6)
  assert len(set(utterances.videos)) == 62 and utterances.labels.mean() == pytest.approx(709 / 1447)


def _write_mosi(root, transcripts, features, index):
  (root / "text").mkdir(parents=True)
  (root / "audio").mkdir()
  (root / "video").mkdir()
  with open(root / mosi.TRANSCRIPTS, "w", newline="") as f:
    csv.writer(f, quoting=csv.QUOTE_ALL).writerows(transcripts)
  for m, width in (("text", 3), ("audio", 2), ("video", 2)):
    with open(root / mosi.FEATURE_FILES[m], "w", newline="") as f:
      csv.writer(f).writerows([list(np.round(r[m], 5)) + [r["label"]] for r in features])
  with open(root / mosi.TRANSCRIPT_INDEX, "w", newline="") as f:
    csv.writer(f).writerows(index)


def test_mosi_counts_what_it_cannot_join(tmp_path):
  """A generated release: text_train.csv reordered, a feature row with no transcript, a transcript with no
  features, a label that disagrees."""
  rng = np.random.default_rng(0)
  transcripts = [
    ["vidA_1", "GOOD", "0", "1"],
    ["vidA_2", "BAD", "0", "0"],
    ["vidB_1", "FINE", "1", "1"],
    ["vidB_2", "MEH", "1", "0"],
    ["vidB_3", "NO FEATURES", "1", "1"],
  ]
  features = [
    {m: rng.standard_normal(w) for m, w in (("text", 3), ("audio", 2), ("video", 2))} | {"label": label}
    for label in (1, 0, 1, 1, 0)
  ]  # row 3 disagrees with its transcript; row 4 has no index entry
  index = [[str(t)] + list(np.round(features[r]["text"], 5)) for r, t in ((2, 2), (0, 0), (1, 1), (3, 3))]
  _write_mosi(tmp_path / "mosi", transcripts, features, index)
  utterances = mosi.read(str(tmp_path / "mosi"))
  assert list(utterances.ids) == ["vidA_1", "vidA_2", "vidB_1", "vidB_2", "vidB_3"]
  assert list(utterances.has["audio"]) == [True, True, True, False, False]  # joined by features, not row order
  np.testing.assert_allclose(utterances.features["audio"][2], np.round(features[2]["audio"], 5))
  assert len(utterances.skipped) == 2
  assert any("label 1, but its transcript vidB_2 says 0" in s for s in utterances.skipped)
  assert any("feature row 5: no rows" in s for s in utterances.skipped)
  config = _mosi_config(tmp_path / "mosi", validation_videos=("vidB",))
  validation = load_split(config, "validation")
  assert list(validation.arrays["id"]) == ["vidB_1"]  # transcript-only utterances need the transcript modality
  config.modalities = ("transcript", "audio")
  config.tokenizer = mosi_tokenizer()
  validation = load_split(config, "validation")
  assert list(validation.arrays["id"]) == ["vidB_1", "vidB_2", "vidB_3"]
  np.testing.assert_array_equal(validation.arrays["present"], [[1, 1], [1, 0], [1, 0]])
  assert validation.metadata["missing"] == {"transcript": 0, "audio": 2}


def mosi_tokenizer():
  from emojax.data.text import default_text_encoder_path

  return default_text_encoder_path()


def test_video_splits_never_share_a_video(mosi_root):
  config = _mosi_config(mosi_root)
  train, validation = load_split(config, "train"), load_split(config, "validation")
  videos = {split: set(d.arrays["group"]) for split, d in (("train", train), ("validation", validation))}
  assert not videos["train"] & videos["validation"] and len(videos["train"] | videos["validation"]) == 62
  assert len(videos["validation"]) == 12 and len(train) + len(validation) == 1447
  config.split_seed = 1
  assert set(load_split(config, "validation").arrays["group"]) != videos["validation"]  # seeded
  config.validation_videos = tuple(sorted(videos["validation"]))[:2]
  assert set(load_split(config, "validation").arrays["group"]) == set(config.validation_videos)
  config.validation_videos = ("no_such_video",)
  with pytest.raises(ValueError, match="no_such_video"):
    load_split(config, "validation")


# ------------------------------------------------------------------------------------------------
# Utterance context: one graph per video.
# ------------------------------------------------------------------------------------------------
def test_context_graph_edges_follow_the_config():
  modalities = ("text", "audio", "video")
  node = lambda u, m: u * 3 + modalities.index(m)
  full = context_graph.context_adjacency(4, modalities, "full", window=1, edges="cross+time")
  assert full.shape == (12, 12) and np.trace(full) == 12
  cross = context_graph.context_adjacency(4, modalities, "full", window=1, edges="cross")
  time = context_graph.context_adjacency(4, modalities, "full", window=1, edges="time")
  assert cross.sum() - 12 == 4 * 6 and time.sum() - 12 == 3 * 6  # 6 ordered pairs per utterance / per modality
  np.testing.assert_array_equal(full, cross | time)
  assert cross[node(1, "text"), node(1, "video")] and not cross[node(1, "text"), node(2, "text")]
  assert time[node(1, "audio"), node(2, "audio")] and time[node(2, "audio"), node(1, "audio")]
  assert not time[node(1, "audio"), node(3, "audio")] and not time[node(1, "audio"), node(2, "video")]
  wide = context_graph.context_adjacency(4, modalities, "full", window=2, edges="time")
  assert wide[node(1, "audio"), node(3, "audio")]
  causal = context_graph.context_adjacency(4, modalities, "full", window=1, edges="time", causal=True)
  assert causal[node(1, "text"), node(2, "text")] and not causal[node(2, "text"), node(1, "text")]
  star = context_graph.context_adjacency(2, modalities, "star:text", window=1, edges="cross")
  assert star[node(0, "audio"), node(0, "text")] and not star[node(0, "audio"), node(0, "video")]
  np.testing.assert_array_equal(context_graph.context_adjacency(3, modalities, edges="none"), np.eye(9))
  with pytest.raises(ValueError, match="edges='space'"):
    context_graph.context_adjacency(3, modalities, edges="space")


def _context_data(num_videos=3, lengths=(5, 2, 7), dims=(4, 3)):
  """Per-utterance fusion examples of a few videos, turned into context examples."""
  from emojax.data.base import Dataset

  rng = np.random.default_rng(0)
  ids, groups, positions = [], {}, {}
  for v, length in zip(range(num_videos), lengths):
    for u in rng.permutation(length):  # out of order: the context sorts by position
      key = f"v{v}_{u + 1}"
      ids.append(key)
      groups[key], positions[key] = f"v{v}", u + 1
  sources = {}
  for m, dim in zip(("a", "b"), dims):
    keep = [k for k in ids if not (m == "b" and k == "v0_3")]  # one utterance lacks modality b
    sources[m] = Dataset(
      {
        "features": rng.standard_normal((len(keep), dim)).astype(np.float32),
        "label": np.array([int(k[-1]) % 2 for k in keep], np.int32),
        "id": np.array(keep),
      },
      class_names=("n", "p"),
      model_inputs=("features", "label"),
    )
  data = aligned.join(sources, ("n", "p"), "train", "test", groups, {"position": positions})
  return data, aligned.utterance_context(data)


def test_context_examples_carry_their_video_in_order():
  per_utterance, context = _context_data()
  assert context.metadata["context_slots"] == 7 and len(context) == len(per_utterance) == 14
  assert context.model_inputs == (
    "label",
    "present",
    "a_features",
    "a_present",
    "b_features",
    "b_present",
    "utterance_position",
  )
  assert context.sources["a"].arrays["features"].shape == (3, 7, 4)  # stored once per video
  for i in range(len(context)):
    example, key = context[i], context.arrays["id"][i]
    slot = int(example["utterance_position"])
    assert slot == int(key.split("_")[1]) - 1
    row = per_utterance.arrays["a_row"][i]
    np.testing.assert_array_equal(example["a_features"][slot], per_utterance.sources["a"].arrays["features"][row])
    assert example["a_present"].sum() == {"v0": 5, "v1": 2, "v2": 7}[key.split("_")[0]]
  v0 = np.flatnonzero(np.array([k.startswith("v0_") for k in context.arrays["id"]]))[0]
  np.testing.assert_array_equal(context[v0]["b_present"][:5], [1, 1, 0, 1, 1])  # v0_3 lacks b
  np.testing.assert_array_equal(context.arrays["present"], 1)  # every video has both modalities somewhere


def _context_model(edges, receptive_field_only=True):
  encoders = {m: dict(name="features.mlp", hidden=(8,), dropout=0.0) for m in ("a", "b")}
  return context_graph.UtteranceContextGAT(
    2,
    encoders,
    modalities=("a", "b"),
    window=1,
    edges=edges,
    features=8,
    num_heads=2,
    num_layers=2,
    dropout=0.0,
    receptive_field_only=receptive_field_only,
  )


def test_context_readout_equals_the_whole_video_graph_and_hears_only_its_edges():
  _, context = _context_data(lengths=(7, 6, 7))
  rows = range(0, len(context), 2)
  batch = {k: np.stack([context[i][k] for i in rows]) for k in context.model_inputs if k != "label"}
  model = _context_model("cross+time")
  params = jax.jit(model.init)(jax.random.key(0), batch)
  apply = jax.jit(model.apply)
  logits = apply(params, batch)["logits"]
  whole = jax.jit(_context_model("cross+time", receptive_field_only=False).apply)(params, batch)["logits"]
  np.testing.assert_allclose(logits, whole, atol=1e-5)  # only the receptive field is built: the same result
  # Changing the utterance just after each example's own moves its prediction with time edges, never without.
  moved = {k: v.copy() for k, v in batch.items()}
  for i, slot in enumerate(batch["utterance_position"]):
    if slot + 1 < moved["a_features"].shape[1]:
      moved["a_features"][i, slot + 1] += 5.0
  has_next = batch["utterance_position"] + 1 < np.array(
    [{"v0": 7, "v1": 6, "v2": 7}[k.split("_")[0]] for k in context.arrays["id"][rows]]
  )
  changed = np.abs(np.asarray(apply(params, moved)["logits"] - logits)).max(1) > 1e-4
  assert changed[has_next].all()
  no_context = _context_model("cross")
  params = jax.jit(no_context.init)(jax.random.key(0), batch)
  apply = jax.jit(no_context.apply)
  np.testing.assert_allclose(apply(params, moved)["logits"], apply(params, batch)["logits"], atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Encoders, bootstrap intervals, sweeps and a training run.
# ------------------------------------------------------------------------------------------------
def test_feature_mlp_standardises_with_the_training_statistics():
  from emojax.models.feature_encoders import FeatureMLP

  features = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]], np.float32)
  statistics = aligned.vector_statistics(features)
  assert statistics["input_std"][1] == 1.0  # a constant column standardises to 0, not to a division by zero
  model = FeatureMLP(2, hidden=(), input_mean=statistics["input_mean"], input_std=statistics["input_std"])
  variables = model.init(jax.random.key(0), {"features": features})
  np.testing.assert_allclose(variables["batch_stats"]["input_mean"], [2.0, 5.0])
  out = model.apply(variables, {"features": features})
  standardised = (features - [2.0, 5.0]) / [np.std([1.0, 3.0, 2.0]), 1.0]
  np.testing.assert_allclose(out["embedding"], standardised, rtol=1e-5)
  bare = FeatureMLP(2, hidden=())  # a model built without the data: a checkpoint brings the statistics
  np.testing.assert_allclose(bare.apply(variables, {"features": features})["embedding"], standardised, rtol=1e-5)


def test_bootstrap_gain_over_the_best_single_modality(tmp_path):
  from emojax import metrics, results

  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 300)
  ids = np.array([f"x{i}" for i in range(300)])

  def run(name, modalities, accuracy):
    predicted = np.where(rng.random(300) < accuracy, labels, (labels + 1) % 3)
    out = tmp_path / name / "robustness"
    out.mkdir(parents=True)
    subset = "+".join(modalities)
    order = rng.permutation(300)  # runs may list examples in any order: compared by id
    np.savez(
      out / "predictions.npz",
      modalities=np.array(modalities),
      subsets=np.array([subset]),
      class_names=np.array(["a", "b", "c"]),
      **{f"{subset}.id": ids[order], f"{subset}.label": labels[order], f"{subset}.logits": np.eye(3)[predicted][order]},
    )
    return predicted

  face = run("face__seed=0", ("face",), 0.5)
  run("speech__seed=0", ("speech",), 0.6)
  fused = [run(f"fused__seed={s}", ("face", "speech"), 0.8) for s in (0, 1)]
  gains = results.bootstrap_gains(sorted(tmp_path.iterdir()), "balanced_accuracy", resamples=500)
  assert gains["fused"]["best single"] == "speech" and gains["speech"]["gain"] == 0
  expected = np.mean([metrics.classification_metrics(labels, f, "abc")["balanced_accuracy"] for f in fused])
  assert gains["fused"]["balanced_accuracy"] == pytest.approx(expected)
  assert 0 < gains["fused"]["low"] < gains["fused"]["gain"] < gains["fused"]["high"]
  for metric in results.BOOTSTRAP_METRICS:  # the resampled metrics are the evaluator's on the unresampled rows
    value = results.resampled_metric(labels[None], face[None], 3, metric)[0]
    assert value == pytest.approx(metrics.classification_metrics(labels, face, "abc")[metric])


def test_a_sweep_step_list_runs_train_then_robustness(tmp_path):
  import sys
  from pathlib import Path

  sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launch"))
  import sweep

  planned = sweep.commands([{"config": "configs/aligned.py:set=mosi", "mode": "train+robustness"}], tmp_path, "py")
  ((workdir, steps),) = planned
  assert [mode for mode, _ in steps] == ["train", "robustness"]
  assert steps[1][1][-1] == "--mode=robustness" and "--mode=train" in steps[0][1]
  (workdir / "eval").mkdir(parents=True)
  (workdir / "eval" / "report.json").write_text("{}")  # train done: only robustness is left
  assert sweep.DONE["train"] == "eval/report.json" and not (workdir / sweep.DONE["robustness"]).exists()


@pytest.mark.slow
def test_a_tiny_aligned_training_run_whose_loss_falls(tmp_path, mosi_root):
  from configs.aligned import get_config
  from emojax import robustness, train

  config = get_config("set=mosi,modalities=audio+video,method=gat,runlocal")
  config.data.root = str(mosi_root)
  config.train.num_steps, config.train.log_every_steps, config.train.tensorboard = 24, 4, False
  config.model.fusion.features, config.model.fusion.num_heads, config.model.fusion.num_layers = 32, 2, 1
  report = train.train_and_evaluate(config, tmp_path / "run")
  assert report["all"]["class_names"] == ["negative", "positive"] and report["all"]["num_examples"] == 297
  losses = [
    json.loads(line)["loss"]
    for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    if json.loads(line).get("split") == "train"
  ]
  assert len(losses) == 6 and np.mean(losses[-2:]) < 0.85 * losses[0]
  rows = robustness.evaluate_missing_modalities(config, tmp_path / "run")
  assert set(rows) == {"audio+video", "audio", "video"}  # encoders trained only through the head: no "alone" rows
  with np.load(tmp_path / "run" / "robustness" / "predictions.npz") as saved:
    assert list(saved["subsets"]) == ["audio+video", "audio", "video"] and saved["audio+video.logits"].shape == (297, 2)
  shutil.rmtree(tmp_path / "run")


def test_aligned_sets_keep_their_own_label_spaces():
  """A bundle of an aligned-set run names RAVDESS's 8 classes (calm read as neutral in Ekman-7) or MOSI's two
  sentiment classes, which have no Ekman-7 view; not the Ekman-7 of the other fusion tuples."""
  import ml_collections

  from emojax import data as data_lib
  from emojax import labels as labels_lib

  ravdess = data_lib.label_space_of(ml_collections.ConfigDict(dict(name="multimodal_ravdess_av", labels="native")))
  assert ravdess.class_names == labels_lib.RAVDESS_CLASSES
  calm = ravdess.class_names.index("calm")
  assert labels_lib.EKMAN7[int(np.argmax(ravdess.ekman_matrix[calm]))] == "neutral"
  mosi = data_lib.label_space_of(ml_collections.ConfigDict(dict(name="mosi")))
  assert mosi.class_names == ("negative", "positive") and mosi.ekman_matrix is None
