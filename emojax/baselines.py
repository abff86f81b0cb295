"""Traditional baselines through the same readers and evaluator as the deep models.

  python -m emojax.baselines --config configs/face_cnn.py --workdir runs/fer_hog_logreg
  python -m emojax.baselines --config configs/speech.py --workdir runs/ravdess8_mfcc_svm --classifier=svm
  python -m emojax.baselines --config configs/speech.py:labels=ekman7 --workdir runs/ravdess7_mfcc_svm \
      --classifier=svm --all_folds        # every actor fold: runs/.../fold_<k>/ and folds.json
  python -m emojax.baselines --config configs/text.py --workdir runs/goemotions28_tfidf_logreg --C=4
  python -m emojax.baselines --config configs/aligned.py:set=ravdess_av,encoder=face --workdir runs/x --C=1

Faces: HOG descriptors; aligned sets (RAVDESS-AV action units, MOSI vectors): their feature vectors. Speech:
utterance statistics (mean, standard deviation, min, max) of MFCCs
with deltas over the clip's frames, plus eGeMAPS functionals if `config.data.features.egemaps`.
Classifiers: L2 logistic regression or an RBF SVM, on standardised features. `--all_folds` also runs
every speaker fold of a speech corpus (actor-grouped cross-validation) and reports the mean.
Text (GoEmotions): TF-IDF of word uni- and bigrams over content words (stop words removed, negations
kept) and character 2-5-grams, one L2 logistic regression per label (multi-label), class-balanced;
`config.data.lexicon` appends the VADER + NRC features. The evaluator tunes per-label thresholds.
"""

import copy
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
from sklearn.svm import SVC

from emojax import metrics, reports
from emojax.data import SPEECH_CORPORA, load_split

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config whose `data` section picks the dataset.")
flags.DEFINE_string("workdir", None, "Where the report goes.")
flags.DEFINE_enum("classifier", "logreg", ["logreg", "svm"], "L2 logistic regression or RBF SVM.")
flags.DEFINE_float("C", None, "Inverse regularization strength; default 0.1 (logistic regression), 10 (SVM).")
flags.DEFINE_integer("max_iter", 1000, "Solver iterations (logistic regression).")
flags.DEFINE_enum(
  "speech_features",
  "mfcc",
  ["mfcc", "log_mel", "config"],
  "Speech: frame features to summarise; 'config' keeps config.data.features.kind.",
)
flags.DEFINE_bool("all_folds", False, "Speech: also evaluate every speaker fold and report the mean.")
flags.mark_flags_as_required(["config", "workdir"])


def hog_features(images: np.ndarray) -> np.ndarray:
  """uint8 [N, 48, 48, 1] -> HOG descriptors [N, 900] (8x8 cells, 2x2 blocks, 9 orientations)."""
  return np.stack(
    [
      hog(image[..., 0], orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
      for image in images
    ]
  ).astype(np.float32)


def utterance_statistics(dataset) -> np.ndarray:
  """Frame features [N, T, D] (valid up to num_frames) -> [N, 4 D] mean, std, min, max (+ functionals)."""
  rows = []
  for features, frames in zip(dataset.arrays["features"], dataset.arrays["num_frames"]):
    valid = features[:frames]
    rows.append(np.concatenate([valid.mean(0), valid.std(0), valid.min(0), valid.max(0)]))
  stats = np.stack(rows).astype(np.float32)
  if "functionals" in dataset.arrays:
    stats = np.concatenate([stats, dataset.arrays["functionals"]], axis=1)
  return stats


def baseline_features(dataset) -> np.ndarray:
  """HOG of images, statistics of speech frames, or an aligned set's feature vectors as they are."""
  if "image" in dataset.arrays:
    return hog_features(dataset.arrays["image"])
  if np.ndim(dataset.arrays["features"]) == 2:
    return np.asarray(dataset.arrays["features"], np.float32)
  return utterance_statistics(dataset)


def describe(data_config) -> str:
  if data_config.name in ("fer2013", "synthetic"):
    return "hog"
  if data_config.name in ("ravdess_av", "mosi"):
    return f"{data_config.modality}_features"
  features = data_config.features
  return f"{features.kind}_statistics" + ("+egemaps" if features.egemaps else "")


def tfidf_logreg(data_config, C: float, max_iter: int):
  """(model name, rows trained on, GoEmotions eval Dataset, logits [N, C]) of the TF-IDF baseline."""
  from scipy import sparse
  from sklearn.feature_extraction.text import TfidfVectorizer
  from sklearn.multiclass import OneVsRestClassifier

  from emojax.data import goemotions, text

  train = goemotions.load(data_config.root, "train", data_config.label_space)
  evaluation = goemotions.load(data_config.root, data_config.eval_split, data_config.label_space)
  words = TfidfVectorizer(
    tokenizer=text.content_words, token_pattern=None, lowercase=False, ngram_range=(1, 2), min_df=2, sublinear_tf=True
  )
  characters = TfidfVectorizer(
    preprocessor=lambda t: text.clean_text(t).lower(),
    analyzer="char_wb",
    ngram_range=(2, 5),
    min_df=3,
    max_features=200_000,
    sublinear_tf=True,
  )

  def featurize(texts, fit=False):
    blocks = [v.fit_transform(texts) if fit else v.transform(texts) for v in (words, characters)]
    if data_config.lexicon:  # VADER + NRC, brought to about the scale of a TF-IDF row's entries
      blocks.append(sparse.csr_matrix(text.lexicon_features(texts, data_config.cache_dir) / 4.0))
    return sparse.hstack(blocks).tocsr()

  head = OneVsRestClassifier(LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced", solver="liblinear"))
  head.fit(featurize(list(train.arrays["text"]), fit=True), train.arrays["labels"].astype(int))
  probabilities = np.clip(head.predict_proba(featurize(list(evaluation.arrays["text"]))), 1e-7, 1 - 1e-7)
  name = f"tfidf{'+lexicon' if data_config.lexicon else ''}_logreg(C={C})"
  return name, len(train), evaluation, np.log(probabilities / (1 - probabilities)).astype(np.float32)


def train_and_evaluate(
  data_config, workdir: str | Path, classifier: str = "logreg", C: float = 0.1, max_iter: int = 1000
) -> dict:
  start = time.time()
  if data_config.name == "goemotions":
    if classifier != "logreg":
      raise ValueError("The GoEmotions baseline is TF-IDF + logistic regression; drop --classifier=svm.")
    name, num_train, evaluation, logits = tfidf_logreg(data_config, C, max_iter)
    return _report(name, evaluation, logits, data_config, workdir, num_train, start)
  train, evaluation = load_split(data_config, "train"), load_split(data_config, data_config.eval_split)
  head = LogisticRegression(C=C, max_iter=max_iter) if classifier == "logreg" else SVC(C=C, kernel="rbf", gamma="scale")
  model = make_pipeline(StandardScaler(), head)
  model.fit(baseline_features(train), train.arrays["label"])
  # One-hot decisions stand in for logits: argmax is all the evaluator needs.
  predictions = model.predict(baseline_features(evaluation))
  logits = np.eye(evaluation.num_classes, dtype=np.float32)[predictions]
  return _report(
    f"{describe(data_config)}_{classifier}(C={C})", evaluation, logits, data_config, workdir, len(train), start
  )


def _report(name, evaluation, logits, data_config, workdir, num_train, start) -> dict:
  report = metrics.evaluate_outputs({"logits": logits}, evaluation)
  report.update(
    model=name,
    dataset=data_config.name,
    split=data_config.eval_split,
    num_train=num_train,
    seconds=round(time.time() - start, 1),
  )
  reports.write_report(report, Path(workdir) / "eval", f"{name} on {data_config.name}")
  logging.info("%s: %s", name, json.dumps({k: round(report["all"][k], 4) for k in metrics.HEADLINE}))
  return report


def all_folds(data_config, workdir: Path, **kwargs) -> dict:
  """Every speaker fold in turn (actor-grouped cross-validation); writes folds.json with the mean."""
  if data_config.name not in SPEECH_CORPORA or data_config.split_by != "speaker":
    raise ValueError(
      f"--all_folds needs a speech config with config.data.split_by='speaker'; got data {data_config.name!r}."
    )
  folds = []
  for fold in range(data_config.num_folds):
    fold_config = copy.deepcopy(data_config)
    fold_config.fold = fold
    fold_config.validation_speakers = ()
    report = train_and_evaluate(fold_config, workdir / f"fold_{fold}", **kwargs)
    folds.append({k: report["all"][k] for k in metrics.HEADLINE})
  summary = {
    "folds": folds,
    "mean": {k: float(np.mean([f[k] for f in folds])) for k in metrics.HEADLINE},
    "std": {k: float(np.std([f[k] for f in folds])) for k in metrics.HEADLINE},
  }
  (workdir / "folds.json").write_text(json.dumps(summary, indent=2))
  logging.info("%d folds: mean %s", len(folds), json.dumps({k: round(v, 4) for k, v in summary["mean"].items()}))
  return summary


def main(argv):
  del argv
  data_config = FLAGS.config.data
  if data_config.name in SPEECH_CORPORA and FLAGS.speech_features != "config":
    data_config.features.kind = FLAGS.speech_features
  C = FLAGS.C if FLAGS.C is not None else {"logreg": 0.1, "svm": 10.0}[FLAGS.classifier]
  kwargs = dict(classifier=FLAGS.classifier, C=C, max_iter=FLAGS.max_iter)
  if FLAGS.all_folds:  # the configured fold is one of them
    all_folds(data_config, Path(FLAGS.workdir), **kwargs)
  else:
    train_and_evaluate(data_config, FLAGS.workdir, **kwargs)


if __name__ == "__main__":
  app.run(main)
