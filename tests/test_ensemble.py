"""Ensembles (emojax/ensemble.py, --mode=ensemble): two tiny runs that differ only in seed, scored as one."""

import json
import shutil

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from emojax import checkpoint, ensemble, main, metrics, train
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow  # every test restores members trained by a module fixture

# Everything classification_metrics computes; ECE and loss go through a log and back, so they match to rounding.
METRICS = (
  "num_examples",
  "accuracy",
  "balanced_accuracy",
  "macro_precision",
  "macro_recall",
  "macro_f1",
  "weighted_precision",
  "weighted_recall",
  "weighted_f1",
  "per_class",
  "confusion_matrix",
  "class_names",
)


@pytest.fixture(scope="module")
def members(tmp_path_factory):
  """Two 32-step runs (seeds 0 and 1, the second evaluated with test-time flipping), each with its `--mode=eval`
  report and predictions.npz."""
  runs = []
  for seed, eval_dir in ((0, "eval_best_validation"), (1, "eval_best_validation_tta_flip")):
    workdir = tmp_path_factory.mktemp(f"seed{seed}")
    config = tiny_config(**{"seed": seed, "train.num_steps": 32, "eval.tta_flip": seed == 1})
    train.train_and_evaluate(config, workdir)
    report = train.evaluate_checkpoint(config, workdir, "best")
    predictions = dict(np.load(workdir / eval_dir / "predictions.npz"))
    runs.append({"config": config, "workdir": workdir, "report": report, "predictions": predictions})
  return runs


@pytest.fixture(scope="module")
def ensembled(members):
  """`--mode=ensemble --workdir <seed 0> --ensemble_workdirs=<seed 1>`, run through emojax.main; its out dir."""
  first, second = members
  with flagsaver.flagsaver():
    # Any config of the family will do: members are rebuilt from their own config.json; it names the split.
    flags.FLAGS(
      [
        "emojax",
        "--config=configs/face_cnn.py:data=synthetic,runlocal",
        f"--workdir={first['workdir']}",
        "--mode=ensemble",
        f"--ensemble_workdirs={second['workdir']}",
      ]
    )
    flags.FLAGS.config.compilation_cache_dir = ""  # no persistent JAX cache switched on for the rest of the session
    main.main([])
  return first["workdir"] / "ensemble_best_validation"


def _softmax(logits):
  logits = np.asarray(logits, np.float64)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_the_ensemble_scores_the_mean_of_its_members_probabilities(members, ensembled):
  """Member 2's own probabilities are those of its face and mirror image: the ensemble honours its tta_flip."""
  first, second = members
  report = json.loads((ensembled / "report.json").read_text())
  saved = np.load(ensembled / "predictions.npz")
  member_probabilities = [_softmax(m["predictions"]["logits"]) for m in members]
  assert not np.allclose(*member_probabilities, atol=1e-3)  # the seeds differ: the average is not one member
  mean = (member_probabilities[0] + member_probabilities[1]) / 2
  assert len(np.unique(mean.argmax(-1))) > 1  # the metrics below compare more than one constant prediction
  np.testing.assert_allclose(saved["probabilities"], mean, rtol=0, atol=1e-12)
  np.testing.assert_allclose(_softmax(saved["logits"]), mean, rtol=0, atol=1e-12)  # what the evaluator scored
  np.testing.assert_array_equal(saved["ids"], first["predictions"]["ids"])

  expected = metrics.classification_metrics(
    first["predictions"]["labels"], mean.argmax(-1), report["all"]["class_names"]
  )
  assert {k: report["all"][k] for k in METRICS} == {k: expected[k] for k in METRICS}
  assert report["num_members"] == 2 and report["split"] == "validation" and report["checkpoint"] == "best"


def test_the_report_has_the_evaluator_files_and_a_members_table(members, ensembled):
  for name in ("report.json", "report.md", "confusion_matrix.png", "confusion_matrix.json", "predictions.npz"):
    assert (ensembled / name).stat().st_size > 0, name
  report = json.loads((ensembled / "report.json").read_text())
  rows = report["members"]
  assert [r["member"] for r in rows] == [str(m["workdir"]) for m in members] + ["ensemble"]
  for row, member in zip(rows, members):  # each member's own figures are its --mode=eval figures
    assert {k: row[k] for k in metrics.HEADLINE} == {k: member["report"]["all"][k] for k in metrics.HEADLINE}
    assert row["seed"] == member["config"].seed and row["step"] == member["report"]["checkpoint_step"]
    assert row["tta_flip"] == member["config"].eval.tta_flip
  assert rows[2]["accuracy"] == report["all"]["accuracy"]
  markdown = (ensembled / "report.md").read_text()
  assert "## members" in markdown and f"| {members[1]['workdir']} |" in markdown and "| ensemble |" in markdown


def test_a_one_member_ensemble_reproduces_that_members_eval(members, tmp_path):
  member = members[1]  # with test-time flipping: the one-member ensemble flips as its --mode=eval did
  report = ensemble.evaluate_ensemble(member["config"], [member["workdir"]], tmp_path)
  own = member["report"]["all"]
  assert {k: report["all"][k] for k in METRICS} == {k: own[k] for k in METRICS}
  assert report["all"]["expected_calibration_error"] == pytest.approx(own["expected_calibration_error"], abs=1e-6)
  assert report["all"]["loss"] == pytest.approx(own["loss"], rel=1e-5)


def test_members_that_read_different_examples_are_refused(members, tmp_path):
  """The same model evaluated on a smaller split, as a FER2013 model beside a RAVDESS one would be."""
  other = tmp_path / "fewer_eval_examples"
  shutil.copytree(members[1]["workdir"], other)
  config = json.loads((other / "config.json").read_text())
  config["data"]["num_eval_examples"] = 64
  (other / "config.json").write_text(json.dumps(config))
  with pytest.raises(ValueError, match="disagree on the number of evaluation examples") as error:
    ensemble.evaluate_ensemble(members[0]["config"], [members[0]["workdir"], other], tmp_path / "out")
  assert f"{members[0]['workdir']} has 96, {other} has 64" in str(error.value)
  assert not (tmp_path / "out").exists()


def test_workdirs_that_cannot_be_restored_are_named(members, tmp_path):
  empty, untrained = tmp_path / "empty", tmp_path / "untrained"
  empty.mkdir()
  untrained.mkdir()
  shutil.copy(members[0]["workdir"] / "config.json", untrained)
  with pytest.raises(FileNotFoundError, match="Cannot restore every ensemble member") as error:
    ensemble.evaluate_ensemble(members[0]["config"], [members[0]["workdir"], empty, untrained], tmp_path / "out")
  assert f"{empty}: no config.json" in str(error.value)
  assert f"{untrained}: no best checkpoint" in str(error.value)
  assert list(empty.iterdir()) == []  # refused before orbax could create checkpoint folders there
  with pytest.raises(ValueError, match="listed twice"):
    ensemble.evaluate_ensemble(members[0]["config"], [members[0]["workdir"], members[0]["workdir"]], tmp_path)


def test_a_runs_config_json_gives_back_the_config_it_was_trained_with(members):
  config = members[0]["config"]
  loaded = checkpoint.load_run_config(members[0]["workdir"])
  assert loaded.to_json() == config.to_json()
  assert isinstance(loaded.model.block_dropout, tuple)  # JSON wrote the tuple as a list
