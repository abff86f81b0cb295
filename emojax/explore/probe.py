"""Cross-validated linear probes: how well a set of features alone separates the classes.

Standardised features -> multinomial logistic regression, scored on pooled out-of-fold predictions. With
`groups` (speakers, videos) the folds never share a group, so the figure is for unseen speakers or videos,
as the splits are; without, stratified folds. A fusion result can be read against each modality's probe.
"""

import numpy as np

FOLDS = 5


def cross_validate(
  features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None, seed: int = 0, folds: int = FOLDS
) -> dict:
  """{accuracy, balanced_accuracy, macro_f1, chance (the majority class's share), folds}."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
  from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_predict
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  features = np.nan_to_num(np.asarray(features, np.float64))
  labels = np.asarray(labels)
  if groups is not None:
    folds = min(folds, len(np.unique(groups)))
    splitter = GroupKFold(n_splits=folds)
  else:
    folds = min(folds, int(np.bincount(np.unique(labels, return_inverse=True)[1]).min()))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
  chance = float(np.bincount(np.unique(labels, return_inverse=True)[1]).max() / len(labels))
  if folds < 2:
    return {
      "accuracy": float("nan"),
      "balanced_accuracy": float("nan"),
      "macro_f1": float("nan"),
      "chance": chance,
      "folds": folds,
    }
  model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
  predicted = cross_val_predict(model, features, labels, groups=groups, cv=splitter)
  return {
    "accuracy": float(accuracy_score(labels, predicted)),
    "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
    "macro_f1": float(f1_score(labels, predicted, average="macro")),
    "chance": chance,
    "folds": folds,
  }
