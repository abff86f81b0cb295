"""Traditional baseline: HOG features + logistic regression (scikit-learn), same splits and metrics.

  python -m emojax.baselines --config configs/face_cnn.py --workdir runs/fer_hog_logreg

Shows what the deep models add. Reads data through the same readers and reports through the same
evaluator (including FER2013's validation subset without training-set duplicates).
"""

import json
import time
from pathlib import Path

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags
from skimage.feature import hog
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emojax import evaluate
from emojax.data import load_split

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config whose `data` section picks the dataset.")
flags.DEFINE_string("workdir", None, "Where the report goes.")
flags.DEFINE_float("C", 0.1, "Inverse L2 regularization strength of the logistic regression.")
flags.DEFINE_integer("max_iter", 1000, "L-BFGS iterations.")
flags.mark_flags_as_required(["config", "workdir"])


def hog_features(images: np.ndarray) -> np.ndarray:
  """uint8 [N, 48, 48, 1] -> HOG descriptors [N, 900] (8x8 cells, 2x2 blocks, 9 orientations)."""
  return np.stack([hog(image[..., 0], orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2),
                       block_norm="L2-Hys") for image in images]).astype(np.float32)


def train_and_evaluate(data_config, workdir: str | Path, C: float = 0.1, max_iter: int = 1000) -> dict:
  start = time.time()
  train, evaluation = load_split(data_config, "train"), load_split(data_config, data_config.eval_split)
  classifier = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
  classifier.fit(hog_features(train.arrays["image"]), train.arrays["label"])
  # Log-probabilities stand in for logits: argmax is all the evaluator needs.
  logits = classifier.predict_log_proba(hog_features(evaluation.arrays["image"]))
  report = evaluate.evaluate_outputs({"logits": logits}, evaluation)
  report.update(model=f"hog_logistic_regression(C={C})", dataset=data_config.name,
                split=data_config.eval_split, seconds=round(time.time() - start, 1))
  evaluate.write_report(report, Path(workdir) / "eval", f"HOG + logistic regression on {data_config.name}")
  logging.info("HOG + logistic regression: %s",
               json.dumps({k: round(report["all"][k], 4) for k in evaluate.HEADLINE}))
  return report


def main(argv):
  del argv
  train_and_evaluate(FLAGS.config.data, FLAGS.workdir, FLAGS.C, FLAGS.max_iter)


if __name__ == "__main__":
  app.run(main)
