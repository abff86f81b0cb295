import json

import pytest

from emojax import train
from emojax.metric_writer import read_metrics
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  config = tiny_config(**{"train.num_epochs": 6.0, "data.num_train_examples": 512})
  report = train.train_and_evaluate(config, workdir)
  return config, workdir, report


@pytest.mark.slow
def test_training_learns_and_leaves_a_complete_workdir(trained):
  _, workdir, report = trained
  records = read_metrics(workdir)
  train_losses = [r["loss"] for r in records if r["split"] == "train"]
  assert train_losses[-1] < 0.8 * train_losses[0]
  assert report["all"]["accuracy"] > 0.3  # 7 classes: chance is ~0.14; 96 tiny steps
  assert all("examples_per_second" in r for r in records if r["split"] == "train")
  for name in (
    "summary.md",
    "training_curves.png",
    "config.json",
    "eval/report.json",
    "eval/confusion_matrix.png",
    "eval/confusion_matrix.json",
  ):
    assert (workdir / name).stat().st_size > 0, name
  assert list((workdir / "checkpoints").iterdir()) and list((workdir / "best").iterdir())


@pytest.mark.slow
def test_eval_mode_restores_the_best_checkpoint(trained):
  config, workdir, report = trained
  again = train.evaluate_checkpoint(config, workdir, "best")
  assert again["all"]["accuracy"] == report["all"]["accuracy"]
  assert again["checkpoint_step"] == report["checkpoint_step"]
  saved = json.loads((workdir / "eval_best_validation" / "report.json").read_text())
  assert saved["all"]["macro_f1"] == pytest.approx(report["all"]["macro_f1"])


def test_eval_mode_without_checkpoint_says_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match="not a finished training workdir .train it first"):
    train.evaluate_checkpoint(tiny_config(), tmp_path)


@pytest.mark.slow
def test_early_stopping_ends_a_run_that_stopped_improving(tmp_path):
  config = tiny_config(
    **{
      "optimizer.learning_rate": 1e-9,
      "train.num_steps": 40,
      "train.eval_every_steps": 2,
      "train.early_stopping_patience": 2,
    }
  )
  report = train.train_and_evaluate(config, tmp_path)
  assert report["stopped_early"] and report["final_step"] == 6


def test_bad_config_values_name_the_field(tmp_path):
  with pytest.raises(ValueError, match="config.train.batch_size=36 must be divisible"):
    train.train_and_evaluate(tiny_config(**{"train.batch_size": 36}), tmp_path)
  with pytest.raises(ValueError, match="config.optimizer.learning_rate"):
    train.train_and_evaluate(tiny_config(**{"optimizer.learning_rate": -1.0}), tmp_path)


@pytest.mark.slow
def test_a_one_step_run_still_evaluates_and_checkpoints(tmp_path):
  """The compile step used to skip evaluation, so a run (or a resume) ending there had no best."""
  report = train.train_and_evaluate(tiny_config(**{"train.num_steps": 1}), tmp_path)
  assert report["checkpoint_step"] == 1 and (tmp_path / "checkpoints" / "1").is_dir()


def test_resumed_metrics_keep_the_newest_record_per_step(tmp_path):
  lines = [
    {"step": 1, "split": "train", "loss": 3.0},
    {"step": 2, "split": "train", "loss": 2.0},
    {"step": 2, "split": "validation", "accuracy": 0.5},
    {"step": 2, "split": "train", "loss": 1.9},
  ]
  (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
  records = read_metrics(tmp_path)
  assert [(r["split"], r["step"]) for r in records] == [("train", 1), ("train", 2), ("validation", 2)]
  assert records[1]["loss"] == 1.9


@pytest.mark.slow
def test_bfloat16_compute_trains(tmp_path):
  report = train.train_and_evaluate(tiny_config(**{"model.dtype": "bfloat16", "train.num_steps": 8}), tmp_path)
  losses = [r["loss"] for r in read_metrics(tmp_path) if r["split"] == "train"]
  assert losses and all(loss == loss and loss < 10 for loss in losses)  # finite
  assert 0 <= report["all"]["accuracy"] <= 1
