"""Ensembles: several finished runs (seeds of one model, or different models of one dataset) scored as one.

  python -m emojax.main --mode=ensemble --config configs/face_cnn.py:data=fer2013 --workdir runs/fer_seed0 \
      --ensemble_workdirs=runs/fer_seed1,runs/fer_residual_attention

Each member is restored the way `--mode=eval` restores a run (its own config.json, its best or latest
checkpoint, its own `eval.tta_flip`) and predicts the evaluation split; the members' class probabilities
(softmax, or sigmoid on multi-label datasets) are averaged. Probabilities rather than logits: a member's
logit scale says nothing about how far to trust it, and test-time flipping averages the same way. The
average is scored by the evaluator of a single run, given as logits whose softmax (sigmoid) is the mean
probability, so multi-label threshold tuning and evaluation subsets (FER2013's no_train_duplicates) apply
unchanged and the ensemble's figures compare one to one with its members'.
"""

import json
import logging
from pathlib import Path

import jax
import ml_collections
import numpy as np

from emojax import metrics, reports, restore
from emojax.checkpoint import load_run_config
from emojax.data import load_split
from emojax.metrics import class_probabilities


def _has_checkpoint(workdir: Path, which: str) -> bool:
  """Whether orbax finished a step under best/ (or checkpoints/); unfinished saves are `<step>.orbax-...-tmp`."""
  directory = workdir / ("best" if which == "best" else "checkpoints")
  return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


def _check_members(workdirs: list[Path], which: str) -> None:
  """Fails before any model is built if a member cannot be restored; names every such workdir."""
  if not workdirs:
    raise ValueError("An ensemble needs at least one workdir (--workdir, plus --ensemble_workdirs).")
  if which not in ("best", "latest"):
    raise ValueError(f"which={which!r}: an ensemble restores each member's 'best' or 'latest' checkpoint.")
  resolved = [w.resolve() for w in workdirs]
  repeated = sorted({str(w) for w, r in zip(workdirs, resolved) if resolved.count(r) > 1})
  if repeated:
    raise ValueError(f"Workdirs listed twice in the ensemble: {repeated}; each run would count once per listing.")
  problems = []
  for workdir in workdirs:
    if not workdir.is_dir():
      problems.append(f"{workdir}: no such directory")
    elif not (workdir / "config.json").is_file():
      problems.append(f"{workdir}: no config.json")
    elif not _has_checkpoint(workdir, which):
      problems.append(f"{workdir}: no {which} checkpoint in {'best' if which == 'best' else 'checkpoints'}/")
  if problems:
    raise FileNotFoundError(
      "Cannot restore every ensemble member: " + "; ".join(problems) + ". Members are "
      "finished training workdirs (python -m emojax.main --mode=train --workdir ...)."
    )


def _check_same_examples(workdirs: list[Path], configs: list[ml_collections.ConfigDict]) -> None:
  """Averaging is row by row, so every member must predict the same examples, in the same order, with the same
  labels. Checked from the data readers before any model is built: a wrong member costs a read, not a prediction.
  A member whose data config equals the first's is not read: the same reader and config give the same examples
  (the usual ensemble of seeds)."""
  reference = None
  for workdir, config in zip(workdirs[1:], configs[1:]):
    if config.data.to_dict() == configs[0].data.to_dict():
      continue
    if reference is None:
      reference = load_split(configs[0].data, configs[0].data.eval_split)
    data = load_split(config.data, config.data.eval_split)
    checks = (
      ("number of evaluation examples", len(reference), len(data)),
      ("class names", list(reference.class_names), list(data.class_names)),
      ("multi-label setting", reference.multi_label, data.multi_label),
    )
    for what, expected, found in checks:
      if expected != found:
        raise ValueError(
          f"Ensemble members disagree on the {what}: {workdirs[0]} has {expected}, {workdir} has "
          f"{found}. An ensemble averages predictions of one evaluation split: members must be runs "
          "on the same dataset, split and label space."
        )
    for what, key in (("example ids", "id"), ("labels", "labels" if reference.multi_label else "label")):
      expected, found = np.asarray(reference.arrays[key]), np.asarray(data.arrays[key])
      differs = (expected != found).reshape(len(expected), -1).any(1)
      if differs.any():
        row = int(np.flatnonzero(differs)[0])
        raise ValueError(
          f"Ensemble members disagree on the evaluation split's {what} (first at row {row}): "
          f"{workdirs[0]} and {workdir} read different examples. Members must be runs on the same "
          "dataset and split, read the same way."
        )


def _member_row(name: str, figures: dict, **fields) -> dict:
  extra = ("loss", "expected_calibration_error")
  return {"member": name, **fields, **{k: figures[k] for k in metrics.HEADLINE + extra if k in figures}}


def members_markdown(rows: list[dict]) -> list[str]:
  """The members table of report.md: each member's own figures on the split, then the ensemble's."""
  return (
    ["## members", "", "Each member scored on its own, then their averaged probabilities.", ""]
    + reports.markdown_table(rows)
    + [""]
  )


def evaluate_ensemble(
  config: ml_collections.ConfigDict, workdirs: list[str | Path], out_dir: str | Path | None = None, which: str = "best"
) -> dict:
  """Restores every member of `workdirs`, averages their class probabilities on the evaluation split and scores
  the average as `--mode=eval` scores one run; writes report.{json,md} with a members table, confusion
  matrices and predictions.npz to `out_dir` (by default `<first workdir>/ensemble_<which>_<split>`) and
  returns the report.

  Each member is built from its own config.json; `config` only chooses the split (`config.data.eval_split`,
  so `--config.data.eval_split=test` ensembles on the test split).
  """
  workdirs = [Path(w) for w in workdirs]
  _check_members(workdirs, which)
  split = config.data.eval_split
  out_dir = Path(out_dir) if out_dir is not None else workdirs[0] / f"ensemble_{which}_{split}"
  configs = [load_run_config(workdir) for workdir in workdirs]
  for member_config in configs:
    member_config.data.eval_split = split
  _check_same_examples(workdirs, configs)
  dataset, probabilities, sentiment, rows = None, [], [], []
  for workdir, member_config in zip(workdirs, configs):
    run = restore.restore_run(member_config, workdir, which)
    report, outputs = run.evaluate()
    step = run.step
    if dataset is None:  # the first member's split (its evaluation subsets too) scores the ensemble
      dataset = run.eval_data
    probabilities.append(class_probabilities(outputs["logits"], dataset.multi_label))
    sentiment.append(outputs.get("sentiment_logits"))
    tta_flip = bool(member_config.eval.get("tta_flip", False))
    rows.append(
      _member_row(
        str(workdir),
        report["all"],
        model=member_config.model.name,
        seed=member_config.get("seed", ""),
        step=int(step),
        tta_flip=tta_flip,
      )
    )
    logging.info(
      "Ensemble member %s (%s, %s checkpoint, step %d): %s",
      workdir,
      member_config.model.name,
      which,
      step,
      "  ".join(f"{k} {report['all'][k]:.4f}" for k in metrics.HEADLINE),
    )
    del run

  outputs, mean = metrics.averaged_outputs(probabilities, dataset.multi_label, sentiment)
  report = metrics.evaluate_outputs(outputs, dataset)
  report["all"]["loss"] = metrics.plain_cross_entropy(outputs["logits"], dataset)
  report.update(
    model="ensemble", num_members=len(workdirs), dataset=configs[0].data.name, split=split, checkpoint=which
  )
  rows.append(_member_row("ensemble", report["all"], model=f"mean of {len(workdirs)}"))
  if jax.process_index() == 0:
    title = f"Ensemble of {len(workdirs)} runs ({which} checkpoints) on {report['dataset']} {split}"
    reports.write_report(report, out_dir, title)
    report["members"] = rows  # after write_report, which would print the list as one line of its run section
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    with open(out_dir / "report.md", "a") as markdown:
      markdown.write("\n" + "\n".join(members_markdown(rows)))
    np.savez_compressed(
      out_dir / "predictions.npz",
      ids=dataset.arrays["id"],
      labels=dataset.arrays["labels" if dataset.multi_label else "label"],
      probabilities=mean,
      member_probabilities=np.stack(probabilities),
      members=np.array([str(w) for w in workdirs]),
      **outputs,
    )
    logging.info("Wrote %s: %s", out_dir, json.dumps({k: round(report["all"][k], 4) for k in metrics.HEADLINE}))
  report["members"] = rows
  return report
