"""Fusion over modality nodes: graph construction with absent nodes, invariance to node order, missing
modalities never read, and the decision-level weightings against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax.models import fusion

MODALITIES = ("face", "speech", "text")


@pytest.fixture(scope="module")
def goemotions_mapping():
  from tests.conftest import _shared_dataset

  return _shared_dataset("goemotions") / "ekman_mapping.json"


DIMS = {"face": 12, "speech": 10, "text": 16}


def _batch(present, seed=0, num_classes=7):
  rng = np.random.default_rng(seed)
  batch = {"present": np.asarray(present, np.float32)}
  for m in MODALITIES:
    batch[f"{m}_embedding"] = rng.standard_normal((len(present), DIMS[m])).astype(np.float32)
    batch[f"{m}_logits"] = rng.standard_normal((len(present), num_classes)).astype(np.float32) * 2
    batch[f"{m}_confidence"] = rng.uniform(0.1, 0.9, len(present)).astype(np.float32)
  return batch


def test_adjacency_of_each_graph():
  full = fusion.modality_adjacency(MODALITIES, "full")
  assert full.sum() == 9
  star = fusion.modality_adjacency(MODALITIES, "star:text")
  np.testing.assert_array_equal(star, [[1, 0, 1], [0, 1, 1], [1, 1, 1]])
  chain = fusion.modality_adjacency(MODALITIES, "chain")
  np.testing.assert_array_equal(chain, [[1, 1, 0], [1, 1, 1], [0, 1, 1]])
  np.testing.assert_array_equal(fusion.modality_adjacency(MODALITIES, "self"), np.eye(3))
  explicit = fusion.modality_adjacency(MODALITIES, "edges:face-speech,speech>text")
  np.testing.assert_array_equal(explicit, [[1, 1, 0], [1, 1, 1], [0, 0, 1]])
  with pytest.raises(ValueError, match="'voice'"):
    fusion.modality_adjacency(MODALITIES, "star:voice")
  with pytest.raises(ValueError, match="expected one of"):
    fusion.modality_adjacency(MODALITIES, "ring")


def test_graph_construction_leaves_absent_modalities_out():
  present = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1]], np.float32)
  nodes = jnp.ones((3, 3, 4))
  graph = fusion.modality_graphs(nodes, present, fusion.modality_adjacency(MODALITIES, "full"))
  np.testing.assert_array_equal(graph.n_node, [3, 2, 1, 4])  # padding graph: 3 absent slots + padding node
  np.testing.assert_array_equal(graph.n_edge, [9, 4, 1, 13])  # full graph on the present nodes, self-loops
  pad = 9
  senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
  absent_slots = {4, 6, 7}  # example 1 lacks speech (slot 1*3+1); example 2 lacks face and speech (6, 7)
  real = senders != pad
  assert not absent_slots & set(senders[real]) and not absent_slots & set(receivers[real])
  assert ((senders == pad) == (receivers == pad)).all()
  ids = np.asarray(fusion.node_graph_ids(present))
  np.testing.assert_array_equal(ids, [0, 0, 0, 1, 3, 1, 3, 3, 2, 3])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gat", "concat"])
def test_absent_modalities_are_never_read(name):
  present = [[1, 0, 1], [0, 1, 1], [1, 1, 0]]
  model = (
    fusion.GATFusion(7, MODALITIES, feature_weighting="adaptive")
    if name == "gat"
    else fusion.ConcatFusion(7, MODALITIES, feature_weighting="gate")
  )
  batch = _batch(present)
  params = model.init(jax.random.key(0), batch)
  scrambled = dict(batch)
  for row, flags in enumerate(present):
    for m, flag in zip(MODALITIES, flags):
      if not flag:
        scrambled[f"{m}_embedding"] = scrambled[f"{m}_embedding"].copy()
        scrambled[f"{m}_embedding"][row] = 1e3
  first, second = model.apply(params, batch), model.apply(params, scrambled)
  np.testing.assert_allclose(first["logits"], second["logits"], atol=1e-5)
  assert (np.asarray(first["modality_weights"])[np.asarray(present) == 0] == 0).all()


@pytest.mark.slow
def test_gat_fusion_is_invariant_to_the_order_of_its_nodes():
  batch = _batch([[1, 1, 1], [1, 0, 1], [0, 1, 0]])
  model = fusion.GATFusion(7, MODALITIES, graph="full", features=32, num_heads=4, feature_weighting="adaptive")
  params = model.init(jax.random.key(1), batch)
  order = (2, 0, 1)
  permuted_model = fusion.GATFusion(
    7, tuple(MODALITIES[i] for i in order), graph="full", features=32, num_heads=4, feature_weighting="adaptive"
  )
  permuted_params = jax.tree.map(lambda x: x, params)
  table = params["params"]["modality_features"]["modality_embedding"]
  permuted_params["params"]["modality_features"]["modality_embedding"] = table[np.array(order)]
  permuted_batch = {**batch, "present": batch["present"][:, np.array(order)]}
  np.testing.assert_allclose(
    model.apply(params, batch)["logits"], permuted_model.apply(permuted_params, permuted_batch)["logits"], atol=1e-5
  )
  # A star graph is not symmetric: moving its centre changes the result.
  star = fusion.GATFusion(7, MODALITIES, graph="star:face", features=32, num_heads=4)
  star_params = star.init(jax.random.key(1), batch)
  other = fusion.GATFusion(7, MODALITIES, graph="star:text", features=32, num_heads=4)
  assert not np.allclose(star.apply(star_params, batch)["logits"][0], other.apply(star_params, batch)["logits"][0])


def test_confidence_weighting_against_a_hand_computation():
  batch = _batch([[1, 1, 0], [0, 1, 1]], num_classes=4)
  probabilities = {m: jax.nn.softmax(batch[f"{m}_logits"], -1) for m in MODALITIES}
  for source in ("entropy", "max_probability", "heads"):
    model = fusion.ConfidenceWeightedFusion(4, MODALITIES, confidence=source)
    out = model.apply(model.init(jax.random.key(0), batch), batch)
    for row, names in ((0, ("face", "speech")), (1, ("speech", "text"))):

      def confidence(m):
        p = np.asarray(probabilities[m][row])
        if source == "entropy":
          return 1 + (p * np.log(p)).sum() / np.log(4)
        return p.max() if source == "max_probability" else batch[f"{m}_confidence"][row]

      expected = sum(confidence(m) * np.asarray(probabilities[m][row]) for m in names) / sum(map(confidence, names))
      np.testing.assert_allclose(np.exp(out["logits"][row]), expected, rtol=1e-5)
  mean = fusion.MeanEnsemble(4, MODALITIES)
  out = mean.apply(mean.init(jax.random.key(0), batch), batch)
  np.testing.assert_allclose(
    np.exp(out["logits"][1]), (probabilities["speech"][1] + probabilities["text"][1]) / 2, rtol=1e-5
  )
  learned = fusion.ConfidenceWeightedFusion(4, MODALITIES, confidence="learned")
  params = learned.init(jax.random.key(0), batch)
  assert set(params["params"]) == {"log_temperature", "scale", "bias"}
  with pytest.raises(ValueError, match="confidence='vibes'"):
    fusion.ConfidenceWeightedFusion(4, MODALITIES, confidence="vibes").init(jax.random.key(0), batch)
  del batch["speech_confidence"]
  with pytest.raises(ValueError, match=r"\['speech'\] bring none"):
    fusion.ConfidenceWeightedFusion(4, MODALITIES, confidence="heads").init(jax.random.key(0), batch)


# ------------------------------------------------------------------------------------------------
# Label-matched tuples and modality dropout.
# ------------------------------------------------------------------------------------------------
def test_label_matched_tuples_pair_equal_labels_and_use_every_row():
  from emojax.data import multimodal

  rng = np.random.default_rng(0)
  labels = {"face": rng.integers(7, size=300), "speech": rng.integers(6, size=40), "text": rng.integers(-1, 7, size=90)}
  index, tuple_labels = multimodal.label_matched_indices(labels, seed=3)
  for m, rows in index.items():
    real = rows >= 0
    np.testing.assert_array_equal(labels[m][rows[real]], tuple_labels[real])  # every pair shares its label
    assert set(rows[real]) == set(np.flatnonzero(labels[m] >= 0))  # every usable row is used
  assert (index["speech"][tuple_labels == 6] == -1).all()  # no speech row of class 6: absent
  assert len(tuple_labels) == sum(max((labels[m] == k).sum() for m in labels) for k in range(7))
  again, _ = multimodal.label_matched_indices(labels, seed=3)
  assert all((again[m] == index[m]).all() for m in index)
  capped, capped_labels = multimodal.label_matched_indices(labels, seed=3, max_per_class=5)
  assert len(capped_labels) == 35


def _fake_exports(root, goemotions_root, sizes=(("train", 60), ("validation", 30)), arg="data=exports"):
  """Exports as `--mode=export` writes them (speech with speakers, text with GoEmotions' 28 labels) and a fusion
  config reading them."""
  from configs.fusion import get_config
  from emojax import labels as labels_lib

  rng = np.random.default_rng(1)
  emotions = [line.strip() for line in (goemotions_root / "emotions.txt").read_text().splitlines()]
  for split, n in sizes:
    for m, dim in (("face", 8), ("speech", 6)):
      (root / m).mkdir(exist_ok=True)
      label = rng.integers(7, size=n)
      logits = rng.standard_normal((n, 7)) + 2 * np.eye(7)[label] * (rng.random((n, 1)) < 0.6)  # better than chance
      np.savez(
        root / m / f"{split}.npz",
        label=label,
        logits=logits,
        embedding=rng.standard_normal((n, dim)),
        class_names=np.array(labels_lib.EKMAN7),
        id=np.arange(n),
        **({"speaker": np.arange(n) % 5} if m == "speech" else {}),
      )
    labels_28 = np.zeros((n, 28))
    labels_28[np.arange(n), rng.integers(28, size=n)] = 1
    labels_28[0, [emotions.index("joy"), emotions.index("anger")]] = 1  # two Ekman groups: not single-label
    (root / "text").mkdir(exist_ok=True)
    np.savez(
      root / "text" / f"{split}.npz",
      labels=labels_28,
      labels_28=labels_28,
      logits=rng.standard_normal((n, 28)),
      embedding=rng.standard_normal((n, 5)),
      class_names=np.array(emotions),
      id=np.arange(n),
    )
  config = get_config(arg)
  for m in ("face", "speech", "text"):
    config.data.sources[m] = str(root / m)
  config.data.goemotions_root = str(goemotions_root)
  config.data.max_per_class_train = 0
  return config


def test_tuples_from_exports_keep_splits_apart_and_map_goemotions(tmp_path, goemotions_mapping):
  from emojax import labels as labels_lib
  from emojax.data import load_split, multimodal

  config = _fake_exports(tmp_path, goemotions_mapping.parent)
  train, validation = load_split(config.data, "train"), load_split(config.data, "validation")
  text_view = multimodal.ekman_view(dict(np.load(tmp_path / "text" / "train.npz")), str(goemotions_mapping.parent))
  assert text_view[0][0] == -1 and text_view[1].shape == (60, 7)
  np.testing.assert_allclose(np.exp(text_view[1]).sum(1), 1, rtol=1e-5)
  # A text encoder trained on the Ekman label space: its own 7-column multi-hot `labels` decide the tuple class
  # (the export also carries the 28-column `labels_28`, which must not be read as Ekman columns).
  ekman_hot = np.eye(7)[[3, 0, 6]]
  ekman_hot[2, 1] = 1  # two groups: not single-label
  ekman_export = {
    "class_names": np.array(labels_lib.EKMAN7),
    "labels": ekman_hot,
    "labels_28": np.eye(28)[[5, 2, 7]],
    "logits": np.zeros((3, 7)),
    "embedding": np.zeros((3, 4)),
  }
  np.testing.assert_array_equal(multimodal.ekman_view(ekman_export)[0], [3, 0, -1])
  assert train.arrays["face_row"].max() < 60 and validation.arrays["face_row"].max() < 30
  assert train.arrays["present"].shape == (len(train), 3) and set(train.model_inputs) >= {"present", "text_logits"}
  config.data.sources.face = str(tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError, match="--mode=export"):
    load_split(config.data, "train")


def test_modality_dropout_keeps_one_modality():
  from emojax.data import pipeline

  rng = np.random.default_rng(0)
  for _ in range(200):
    out = pipeline.drop_modalities({"present": np.array([1.0, 0.0, 1.0])}, rng, rate=0.9)
    assert out["present"].sum() >= 1 and out["present"][1] == 0


@pytest.mark.slow
def test_fusion_trains_on_the_synthetic_modalities(tmp_path):
  from configs.fusion import get_config
  from emojax import train

  config = get_config("method=gat,runlocal")
  config.train.tensorboard = False
  report = train.train_and_evaluate(config, tmp_path / "run")
  assert report["all"]["accuracy"] > 0.3  # chance is 1/7
  assert 0 <= report["all"]["expected_calibration_error"] <= 1
  from emojax.robustness import evaluate_missing_modalities

  rows = evaluate_missing_modalities(config, tmp_path / "run")
  assert list(rows) == [
    "face+speech+text",
    "face+speech",
    "face+text",
    "speech+text",
    "face",
    "speech",
    "text",
    "face encoder alone",
    "speech encoder alone",
    "text encoder alone",
  ]
  assert rows["face+speech+text"]["num_examples"] == config.data.num_eval_examples
  assert all(r["num_examples"] + r["dropped_without_modality"] == config.data.num_eval_examples for r in rows.values())
  assert rows["face encoder alone"]["num_examples"] == rows["face"]["num_examples"]  # the rows that have a face
  assert (tmp_path / "run" / "robustness" / "report.md").is_file()


@pytest.mark.slow
def test_a_sweep_of_two_tiny_runs_is_collected_into_a_table(tmp_path, capsys):
  import sys
  from pathlib import Path

  repo = Path(__file__).resolve().parents[1]
  sys.path.insert(0, str(repo / "launch"))
  import sweep

  from emojax import results

  definition = tmp_path / "tiny_sweep.py"
  definition.write_text(
    "from sweep import product\n"
    "def get_sweep():\n"
    "  return product(config=['configs/fusion.py:method=mean,runlocal', 'configs/fusion.py:method=concat,runlocal'],"
    " **{'config.train.num_steps': [4], 'config.train.tensorboard': [False]})\n"
  )
  root = tmp_path / "sweep"
  assert sweep.main([str(definition), "--root", str(root), "--print"]) == 0
  printed = capsys.readouterr().out.strip().splitlines()
  assert len(printed) == 2 and "--config.train.num_steps=4" in printed[0]
  assert sweep.main([str(definition), "--root", str(root)]) == 0
  workdirs = sorted(str(p) for p in root.iterdir())
  assert [Path(w).name for w in workdirs] == ["method=concat,runlocal", "method=mean,runlocal"]
  results.main(workdirs + ["--csv", str(tmp_path / "table.csv"), "--plot", str(tmp_path / "plot.png")])
  table = capsys.readouterr().out
  assert "fusion.concat" in table and "fusion.mean" in table
  assert len((tmp_path / "table.csv").read_text().splitlines()) == 3 and (tmp_path / "plot.png").stat().st_size > 1000
  rows = [results.row(Path(w)) for w in workdirs]
  grouped = results.over_seeds(rows + [{**rows[0], "run": rows[0]["run"] + "__seed=1", "accuracy": 0.0}])
  assert [g["seeds"] for g in grouped] == [2, 1]  # runs differing only in seed= pool into one row
  assert grouped[0]["accuracy"] == f"{rows[0]['accuracy'] / 2:.4f} ± {rows[0]['accuracy'] / 2:.4f}"
  assert sweep.main([str(definition), "--root", str(root)]) == 0  # finished runs are skipped
  assert "done already" in capsys.readouterr().out


def test_a_modality_without_a_source_is_absent_everywhere():
  from emojax.data import multimodal

  rng = np.random.default_rng(0)
  view = lambda n, d: (rng.integers(7, size=n), rng.standard_normal((n, 7)), rng.standard_normal((n, d)))
  data = multimodal.tuples_dataset({"face": None, "speech": view(30, 4), "text": view(50, 6)}, "train", seed=0)
  assert (data.arrays["present"][:, 0] == 0).all() and (data.arrays["present"][:, 1:] == 1).all()
  assert data.arrays["face_embedding"].shape == (len(data), 1)
  aligned = multimodal.tuples_dataset(
    {"face": None, "speech": view(20, 4), "text": view(20, 6)}, "train", seed=0, aligned=True
  )
  assert len(aligned) == 20 and (aligned.arrays["present"][:, 0] == 0).all()
  with pytest.raises(ValueError, match="No modality has a source"):
    multimodal.tuples_dataset({"face": None}, "train", seed=0)


def test_per_modality_auxiliary_losses_count_present_modalities_only():
  from emojax import losses

  batch = _batch([[1, 0, 1], [0, 1, 0]])
  batch["label"] = np.array([2, 5])
  model = fusion.ConcatFusion(7, MODALITIES, auxiliary_heads=True)
  outputs = model.apply(model.init(jax.random.key(0), batch), batch)
  assert outputs["modality_logits"].shape == (2, 3, 7)
  plain, _ = losses.classification_loss(outputs, batch)
  total, metrics = losses.classification_loss(outputs, batch, auxiliary_weight=0.5)
  log_p = jax.nn.log_softmax(outputs["modality_logits"], -1)
  by_hand = (-(log_p[0, 0, 2] + log_p[0, 2, 2]) / 2 - log_p[1, 1, 5]) / 2
  np.testing.assert_allclose(metrics["auxiliary_cross_entropy"], by_hand, rtol=1e-5)
  np.testing.assert_allclose(total, plain + 0.5 * by_hand, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# End-to-end fusion (emojax/models/multimodal.py): encoders + fusion head from raw inputs.
# ----------------------------------------------------------------------------------------------
def test_input_tuples_gather_each_modality_row_of_the_tuple_label():
  import ml_collections

  from emojax.data import load_split, multimodal

  face = ml_collections.ConfigDict(dict(name="synthetic", num_train_examples=70, num_eval_examples=30, seed=0))
  speech = ml_collections.ConfigDict(dict(name="synthetic", num_train_examples=40, num_eval_examples=20, seed=1))
  config = ml_collections.ConfigDict(
    dict(
      name="multimodal_inputs",
      seed=0,
      max_per_class_train=0,
      max_per_class_eval=0,
      modalities=dict(face=face, speech=speech),
    )
  )
  data = load_split(config, "train")
  sources = {"face": load_split(face, "train"), "speech": load_split(speech, "train")}
  assert data.model_inputs == ("label", "present", "face_image", "speech_image")
  for i in range(0, len(data), 7):
    example = data[i]
    for m, source in sources.items():
      row = data.arrays[f"{m}_row"][i]
      if row >= 0:
        assert source.arrays["label"][row] == example["label"]
        np.testing.assert_array_equal(example[f"{m}_image"], source.arrays["image"][row])
      else:
        assert not example[f"{m}_image"].any()
  # The same pairing as fusion on exports of these datasets: tuples are comparable row for row.
  index, labels = multimodal.label_matched_indices({m: s.arrays["label"] for m, s in sources.items()}, seed=0)
  np.testing.assert_array_equal(labels, data.arrays["label"])
  np.testing.assert_array_equal(index["speech"], data.arrays["speech_row"])
  config.aligned = True  # truly aligned data: row i of every modality is one example, no pairing
  with pytest.raises(ValueError, match="row counts differ"):
    load_split(config, "train")
  config.modalities.speech = face
  aligned = load_split(config, "train")
  np.testing.assert_array_equal(aligned.arrays["speech_row"], np.arange(70))
  np.testing.assert_array_equal(aligned.arrays["label"], sources["face"].arrays["label"])


def test_text_logits_reach_ekman_the_same_way_in_numpy_and_jax():
  from emojax.labels import ekman_log_probabilities

  rng = np.random.default_rng(0)
  logits, matrix = rng.standard_normal((5, 6)), np.zeros((6, 7), np.int32)
  matrix[np.arange(6), [0, 0, 3, 3, 4, 6]] = 1
  expected = ekman_log_probabilities(logits, matrix)
  np.testing.assert_allclose(ekman_log_probabilities(jnp.asarray(logits), matrix, xp=jnp), expected, rtol=1e-5)
  probability = 1 / (1 + np.exp(-logits))
  by_hand = np.maximum(probability[0, 0], probability[0, 1]) / (
    max(probability[0, :2]) + max(probability[0, 2:4]) + probability[0, 4] + probability[0, 5]
  )
  np.testing.assert_allclose(np.exp(expected[0, 0]), by_hand, rtol=1e-6)
  assert np.exp(expected[0, 1]) < 1e-8  # a group without members gets (almost) nothing


def test_learning_rate_scale_freezes_and_slows_parameters():
  import optax

  from configs.multimodal import get_config
  from emojax import train

  config = get_config("runlocal")
  params = {"encoder": {"w": jnp.ones((3, 3))}, "frozen": {"w": jnp.ones((3, 3))}, "head": {"w": jnp.ones((3, 3))}}
  scale = lambda path: 0.1 if path.startswith("encoder/") else 1.0
  tx, _ = train.make_optimizer(
    config,
    total_steps=10,
    steps_per_epoch=1,
    learning_rate_scale=scale,
    is_frozen=lambda path: path.startswith("frozen/"),
  )
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  for _ in range(2):
    updates, state = tx.update(grads, state, params)
  assert not np.asarray(updates["frozen"]["w"]).any() and np.asarray(updates["head"]["w"]).all()
  np.testing.assert_allclose(updates["encoder"]["w"], 0.1 * updates["head"]["w"], rtol=1e-6)
  assert len(jax.tree.leaves(state)) < len(jax.tree.leaves(optax.adamw(1e-3).init(params)))  # frozen: no state


@pytest.mark.slow
def test_end_to_end_fusion_restores_its_encoders_frozen_or_fine_tuned(tmp_path):
  import json

  from configs.multimodal import get_config
  from emojax import train
  from emojax.models import get_model
  from emojax.models.multimodal import restore_encoder
  from tests.conftest import tiny_config

  face_run = tmp_path / "face"
  train.train_and_evaluate(tiny_config(), face_run)
  restored = restore_encoder(str(face_run))

  config = get_config("runlocal")  # frozen encoders: only the fusion head learns
  config.model.encoders.face = json.loads((face_run / "config.json").read_text())["model"]
  config.model.checkpoints.face = str(face_run)
  config.model.freeze_encoders = True
  config.train.num_steps, config.train.tensorboard = 4, False
  report = train.train_and_evaluate(config, tmp_path / "fused")
  exp = train.Experiment(config, tmp_path / "fused", need_train_data=False)
  frozen, _ = exp.checkpointer.restore(exp.abstract_state, "latest")
  exp.checkpointer.close()
  assert 0 <= report["all"]["accuracy"] <= 1
  fresh = exp.with_pretrained(exp.state)  # encoders from their runs (face) or their own initialisation
  for key in ("params", "batch_stats"):
    jax.tree.map(np.testing.assert_array_equal, frozen[key]["face_encoder"], restored[key])
  for m in ("speech", "text"):
    jax.tree.map(np.testing.assert_array_equal, frozen["params"][f"{m}_encoder"], fresh["params"][f"{m}_encoder"])
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, frozen["params"]["fusion"], fresh["params"]["fusion"])))

  # End to end: the encoders train at the scaled rate, except what an encoder itself freezes.
  config = get_config("runlocal")
  config.model.encoders.text.freeze_word_embeddings = True
  config.model.freeze_encoders, config.model.encoder_learning_rate_scale = False, 0.1
  tuned = get_model(config.model, 7, label_maps={m: None for m in ("face", "speech", "text")})
  assert tuned.learning_rate_scale("face_encoder/ConvBatchNormReLU_0/Conv_0/kernel") == 0.1
  assert tuned.frozen_parameters("text_encoder/encoder/word_embeddings/embedding")
  assert not tuned.frozen_parameters("text_encoder/emotion_head/kernel")
  assert tuned.learning_rate_scale("text_encoder/emotion_head/kernel") == 0.1
  assert tuned.learning_rate_scale("fusion/classifier/kernel") == 1.0 and not tuned.frozen_parameters("fusion/x")


def test_crossfit_folds_partition_the_rows_and_keep_a_speaker_in_one_fold():
  from emojax.data.multimodal import crossfit_rows

  speakers = np.repeat(np.arange(10), 7)
  folds = np.stack([crossfit_rows(speakers, 4, k) for k in range(4)])
  assert (folds.sum(0) == 1).all()  # every row in exactly one fold
  for speaker in range(10):
    assert len({int(folds[:, speakers == speaker].argmax(0)[i]) for i in range(7)}) == 1
  with pytest.raises(ValueError, match="fold=4"):
    crossfit_rows(speakers, 4, 4)


@pytest.mark.slow
def test_crossfit_scores_pooled_out_of_fold_predictions(tmp_path, goemotions_mapping):
  import json

  from emojax.crossfit import crossfit
  from emojax.data import load_split

  config = _fake_exports(
    tmp_path,
    goemotions_mapping.parent,
    sizes=(("validation", 200),),
    arg="method=mean,data=exports,protocol=crossfit,runlocal",
  )
  config.train.num_steps, config.train.tensorboard = 2, False
  sizes = []
  for fold in range(config.data.num_folds):  # a fold's fusion model never trains on a row it is scored on
    config.data.fold = fold
    train, held_out = load_split(config.data, "train"), load_split(config.data, "validation")
    for m in ("face", "speech", "text"):
      assert not set(train.arrays[f"{m}_row"]) & set(held_out.arrays[f"{m}_row"]) - {-1}
    sizes.append(len(held_out))
  report = crossfit(config, tmp_path / "run")
  assert report["all"]["num_examples"] == sum(sizes)
  rows = json.loads((tmp_path / "run" / "robustness" / "report.json").read_text())["subsets"]
  # The mean of one modality's distribution is that encoder's own prediction: the two rows must agree.
  for m in ("face", "speech"):
    assert rows[m]["num_examples"] == rows[f"{m} encoder alone"]["num_examples"]
    np.testing.assert_allclose(rows[m]["accuracy"], rows[f"{m} encoder alone"]["accuracy"])
  assert rows["face+speech+text"]["accuracy"] == report["all"]["accuracy"]
  assert (tmp_path / "run" / "eval" / "report.json").is_file() and (tmp_path / "run" / "fold_3").is_dir()
