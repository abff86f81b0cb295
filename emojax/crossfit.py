"""Cross-fitted fusion: fit the fusion model on held-out encoder outputs, score it on pooled out-of-fold tuples.

  python -m emojax.main --config configs/fusion.py:method=gat,data=exports,protocol=crossfit \
      --config.data.sources.face=runs/<face>/export ... --workdir runs/fusion_crossfit/gat --mode=crossfit

Fusion fitted on the train exports learns from encoders scored on their own training rows, where each is
over-confident (the speech Conformer is far more accurate on its training clips than on new actors; figures in
docs/results_fusion.md), so it learns to trust
whichever encoder over-fitted most. With `config.data.protocol="crossfit"` the fusion model instead learns on
validation rows the encoders never trained on: the validation exports are split into `num_folds` folds (a
speaker's rows in one fold, `emojax.data.multimodal.crossfit_rows`); for each fold k a model is trained on
tuples of the other folds (`<workdir>/fold_k`, resumable) and its *final* checkpoint (no choice made on fold k)
predicts fold k's tuples. The pooled out-of-fold predictions are scored once: `<workdir>/eval/report.{md,json}`
(what emojax.results reads) and `<workdir>/robustness/report.md` (every subset of modalities, and each encoder
alone, on the same pooled tuples).
"""

import copy
import logging
from pathlib import Path

import jax
import numpy as np

from emojax import metrics, reports, restore, robustness, train
from emojax.data.base import Dataset


def _pool(parts: list[tuple[dict, Dataset]]) -> tuple[dict, Dataset]:
  outputs = {k: np.concatenate([o[k] for o, _ in parts]) for k in parts[0][0]}
  first = parts[0][1]
  arrays = {k: np.concatenate([np.asarray(d.arrays[k]) for _, d in parts]) for k in first.arrays}
  return outputs, Dataset(arrays, class_names=first.class_names, model_inputs=first.model_inputs)


def crossfit(config, workdir) -> dict:
  if config.data.get("protocol", "train") != "crossfit":
    raise ValueError("--mode=crossfit needs config.data.protocol='crossfit' (configs/fusion.py:...,protocol=crossfit).")
  workdir = Path(workdir)
  pooled: dict[str, list] = {}
  dropped: dict[str, int] = {}
  for fold in range(config.data.num_folds):
    fold_config = copy.deepcopy(config)
    fold_config.data.fold = fold
    fold_dir = workdir / f"fold_{fold}"
    if not (fold_dir / "eval" / "report.json").is_file():
      train.train_and_evaluate(fold_config, fold_dir)
    run = restore.restore_run(fold_config, fold_dir, "latest")
    for name, (outputs, data, count) in robustness.subset_predictions(run).items():
      pooled.setdefault(name, []).append((outputs, data))
      dropped[name] = dropped.get(name, 0) + count
  rows = {}
  for name, parts in pooled.items():
    rows[name] = robustness.table_row(*_pool(parts), dropped[name])
  outputs, data = _pool(pooled[next(iter(pooled))])  # the first subset keeps every modality the tuples have
  rows.update(robustness.encoder_rows(data, robustness.modalities_of(config)))
  report = metrics.evaluate_outputs(outputs, data)
  report.update(
    model=config.model.name,
    dataset=config.data.name,
    split=config.data.eval_split,
    protocol=f"crossfit, {config.data.num_folds} folds, final checkpoints",
  )
  if jax.process_index() == 0:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    title = f"{config.model.name}, cross-fitted over {config.data.num_folds} folds of the validation tuples"
    reports.write_report(report, workdir / "eval", title)
    robustness.write_table(
      rows,
      workdir / "robustness",
      f"{title}: modalities kept at test time",
      {"model": config.model.name, "protocol": report["protocol"]},
    )
    logging.info("%s: %s", title, {k: round(report["all"][k], 4) for k in metrics.HEADLINE})
  return report
