import json

import numpy as np
import pytest
from sklearn import metrics as skm

from emojax import metrics, reports
from emojax.data.base import Dataset
from emojax.labels import EKMAN7


def test_metrics_match_scikit_learn():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 7, 500)
  predictions = np.where(rng.random(500) < 0.6, labels, rng.integers(0, 7, 500))
  predictions[predictions == 1] = 2  # a class that is never predicted: precision 0, not NaN
  m = metrics.classification_metrics(labels, predictions, EKMAN7)
  assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, predictions))
  assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, predictions))
  for average in ("macro", "weighted"):
    p, r, f, _ = skm.precision_recall_fscore_support(labels, predictions, average=average, zero_division=0)
    assert (m[f"{average}_precision"], m[f"{average}_recall"], m[f"{average}_f1"]) == pytest.approx((p, r, f))
  np.testing.assert_array_equal(m["confusion_matrix"], skm.confusion_matrix(labels, predictions, labels=range(7)))


def test_report_writes_metrics_confusion_matrices_and_subsets(tmp_path):
  labels = np.array([0, 1, 2, 3, 3, 3])
  data = Dataset(
    {"label": labels, "image": np.zeros((6, 1))},
    EKMAN7,
    eval_subsets={"without_train_duplicates": np.array([1, 1, 1, 1, 0, 0], bool)},
  )
  logits = np.eye(7)[np.array([0, 1, 2, 3, 0, 0])]
  report = metrics.evaluate_outputs({"logits": logits}, data)
  assert report["all"]["accuracy"] == pytest.approx(4 / 6)
  assert report["without_train_duplicates"]["accuracy"] == 1.0
  reports.write_report(report, tmp_path, "test")
  for name in (
    "report.json",
    "report.md",
    "confusion_matrix.png",
    "confusion_matrix.json",
    "confusion_matrix_without_train_duplicates.png",
  ):
    assert (tmp_path / name).stat().st_size > 0
  saved = json.loads((tmp_path / "confusion_matrix.json").read_text())
  assert saved["rows_true_columns_predicted"][3] == [2, 0, 0, 1, 0, 0, 0]


def test_training_curves_plot(tmp_path):
  records = [{"step": s, "split": "train", "loss": 2 - s / 10, "accuracy": s / 10} for s in range(1, 6)]
  records += [{"step": 5, "split": "validation", "loss": 1.6, "accuracy": 0.4}]
  reports.plot_training_curves(records, tmp_path / "curves.png")
  assert (tmp_path / "curves.png").stat().st_size > 1000


def test_results_table_collects_workdirs_and_names_unfinished_ones(tmp_path):
  from emojax import results

  run = tmp_path / "run_a"
  (run / "eval").mkdir(parents=True)
  (run / "eval" / "report.json").write_text(
    json.dumps(
      {
        "all": {"accuracy": 0.5, "balanced_accuracy": 0.4, "macro_f1": 0.3, "class_names": ["a", "b", "c"]},
        "model": "m",
        "epochs": 2.0,
        "without_train_duplicates": {"accuracy": 0.45},
      }
    )
  )
  table = results.markdown([results.row(run)])
  assert "| run_a | m | 3 |  | 2.0 |  | 0.5000 | 0.4000 | 0.3000 | 0.4500 |" in table
  # With a metrics log, the final evaluation and the mean of the last ten sit beside the best checkpoint.
  records = [{"step": s, "split": "validation", "balanced_accuracy": s / 100, "time": s} for s in range(1, 13)]
  (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
  row = results.row(run)
  assert row["final balanced_accuracy"] == 0.12 and row["last-10 mean balanced_accuracy"] == pytest.approx(0.075)
  with pytest.raises(FileNotFoundError, match="has the run in .*run_b finished"):
    results.row(tmp_path / "run_b")


def test_expected_calibration_error_by_hand():
  # Two bins hold examples: confidence 0.9 (3 right, 1 wrong: gap 0.15) and 0.6 (1 right, 1 wrong: gap 0.1).
  probabilities = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
  labels = np.array([0, 0, 0, 1, 1, 0])
  expected = 4 / 6 * abs(0.75 - 0.9) + 2 / 6 * abs(0.5 - 0.6)
  assert metrics.expected_calibration_error(probabilities, labels, num_bins=10) == pytest.approx(expected)
  perfect = np.eye(3)[[0, 1, 2]]
  assert metrics.expected_calibration_error(perfect, np.array([0, 1, 2])) == 0.0


def test_the_one_markdown_table_writer():
  rows = [{"model": "a|b", "accuracy": 0.51234}, {"model": "c", "note": "two\nlines"}]
  assert reports.markdown_table(rows) == [
    "| model | accuracy | note |",
    "|---|---|---|",
    "| a\\|b | 0.5123 |  |",
    "| c |  | two lines |",
  ]
  assert reports.markdown_table([[1, 2.0]], ["x", "y"], number=lambda v: f"{v:.1f}")[2] == "| 1 | 2.0 |"
