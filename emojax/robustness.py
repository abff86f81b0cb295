"""Missing-modality robustness of a trained fusion model: every subset of modalities kept at test time.

  python -m emojax.main --config configs/fusion.py:method=gat --workdir runs/fusion_gat --mode=robustness

Restores the best (or `--checkpoint=latest`) checkpoint and evaluates the validation tuples once per
non-empty subset of the modalities the tuples have, hiding the others (`present` = 0). Rows left with no modality
are dropped from that subset's figures and counted. Where the tuples carry each encoder's own logits (fusion on
exports), or the model's encoders were trained on their own (frozen from their runs, or their exports: end-to-end
fusion's `modality_probabilities`), the table ends with every encoder alone on the same tuples: the
single-modality baselines a fused model has to beat. Writes `robustness/report.md`, `report.json` and
`predictions.npz` (per subset `<subset>.id`, `.label`, `.logits`; `modalities`, `subsets`, `class_names`: what
`emojax.results --bootstrap` compares runs on, example by example).
"""

import dataclasses
import itertools
import json
import logging
from pathlib import Path

import jax
import numpy as np

from emojax import metrics as metrics_lib
from emojax import prediction, reports, restore
from emojax.data.base import Dataset


def subsets(modalities) -> list[tuple[str, ...]]:
  return [combo for size in range(len(modalities), 0, -1) for combo in itertools.combinations(modalities, size)]


def modalities_of(config) -> tuple[str, ...]:
  # A fusion head names its modalities; end-to-end fusion (configs/multimodal.py) has one encoder per modality.
  return tuple(config.model.modalities if "modalities" in config.model else config.model.encoders)


def frozen_modalities(config) -> tuple[str, ...]:
  """The modalities of an end-to-end fusion model whose encoders were trained on their own (an exported run, or
  frozen from a run's checkpoint): their logits are single-modality baselines. Encoders trained only through the
  fused loss are not (a GATFusion head never reads their logits)."""
  model = config.model
  if "encoders" not in model:
    return ()
  frozen = model.get("freeze_encoders", False)
  return tuple(
    m
    for m, encoder in model.encoders.items()
    if encoder.get("name") == "features.exported" or frozen is True or (not isinstance(frozen, bool) and m in frozen)
  )


def subset_predictions(run: restore.RestoredRun) -> dict:
  """{"face+text": (outputs, data, dropped), ...}: the model's outputs with only those modalities present (and,
  from end-to-end fusion, each encoder's own `modality_probabilities`)."""
  modalities = modalities_of(run.config)
  present = np.asarray(run.eval_data.arrays["present"])
  predict_step = prediction.make_predict_step(run.model, keys=prediction.PREDICTION_KEYS + ("modality_probabilities",))
  results = {}
  # Subsets over the modalities some example has: with one missing everywhere, its rows would repeat others.
  for kept in subsets([m for m, column in zip(modalities, present.T) if column.any()]):
    masked = present * np.array([m in kept for m in modalities], np.float32)
    usable = masked.sum(1) > 0
    if not usable.any():
      logging.info("No example keeps any of %s; left out of the table.", "+".join(kept))
      continue
    arrays = {k: np.asarray(v)[usable] for k, v in run.eval_data.arrays.items()}
    arrays["present"] = masked[usable]
    data = dataclasses.replace(run.eval_data, arrays=arrays, eval_subsets={})
    results["+".join(kept)] = (run.predict(data, predict_step), data, int((~usable).sum()))
  return results


def table_row(outputs: dict, data: Dataset, dropped: int) -> dict:
  metrics = metrics_lib.evaluate_outputs(outputs, data)["all"]
  return {
    "num_examples": len(data),
    "dropped_without_modality": dropped,
    **{k: metrics[k] for k in metrics_lib.HEADLINE + ("expected_calibration_error",)},
  }


def encoder_logits(data: Dataset, modalities, outputs: dict | None = None, trained_alone=()) -> dict:
  """{modality: its encoder's own logits [N, K]} on the tuples: from the data (fusion on exports), or from an
  end-to-end model's `modality_probabilities` for the encoders in `trained_alone` (`frozen_modalities`)."""
  logits = {}
  for i, m in enumerate(modalities):
    if f"{m}_logits" in data.arrays:
      logits[m] = np.asarray(data.arrays[f"{m}_logits"])
    elif outputs is not None and "modality_probabilities" in outputs and m in trained_alone:
      logits[m] = metrics_lib.logits_of(np.asarray(outputs["modality_probabilities"])[:, i], multi_label=False)
  return logits


def encoder_rows(data: Dataset, modalities, outputs: dict | None = None, trained_alone=()) -> dict:
  """Each encoder alone (its own logits, where present) on the same tuples, where they are known
  (`encoder_logits`)."""
  rows = {}
  for m, logits in encoder_logits(data, modalities, outputs, trained_alone).items():
    have = np.asarray(data.arrays["present"])[:, list(modalities).index(m)] > 0
    if have.any():
      alone = dataclasses.replace(data, arrays={"label": np.asarray(data.arrays["label"])[have]}, eval_subsets={})
      rows[f"{m} encoder alone"] = table_row({"logits": logits[have]}, alone, int((~have).sum()))
  return rows


def write_predictions(results: dict, out: Path, modalities, class_names, encoders: dict | None = None) -> None:
  """`predictions.npz`: each subset's example ids, labels and logits (`<subset>.id|label|logits`), and each
  encoder alone (`<modality> encoder alone.*`) where known, for comparisons example by example."""
  arrays = {
    "modalities": np.array(modalities),
    "subsets": np.array(list(results)),
    "class_names": np.array(class_names),
  }
  for name, (outputs, data) in {**results, **{f"{m} encoder alone": v for m, v in (encoders or {}).items()}}.items():
    arrays[f"{name}.id"] = np.asarray(data.arrays["id"]).astype(str)
    arrays[f"{name}.label"] = np.asarray(data.arrays["label"])
    arrays[f"{name}.logits"] = np.asarray(outputs["logits"], np.float32)
  out.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(out / "predictions.npz", **arrays)


def write_table(rows: dict, out: Path, title: str, extra: dict) -> None:
  out.mkdir(parents=True, exist_ok=True)
  (out / "report.json").write_text(json.dumps({**extra, "subsets": rows}, indent=2))
  table = [
    {
      "modalities": name,
      "examples": r["num_examples"],
      "accuracy": r["accuracy"],
      "balanced accuracy": r["balanced_accuracy"],
      "macro-F1": r["macro_f1"],
      "ECE": r["expected_calibration_error"],
    }
    for name, r in rows.items()
  ]
  lines = [f"# {title}", ""] + reports.markdown_table(table)
  (out / "report.md").write_text("\n".join(lines) + "\n")
  logging.info("Wrote %s", out / "report.md")


def evaluate_missing_modalities(config, workdir, which: str = "best") -> dict:
  run = restore.restore_run(config, workdir, which)
  if "present" not in run.eval_data.arrays:
    raise ValueError(
      f"config.data.name={config.data.name!r} has no `present` flags: --mode=robustness is for "
      "fusion configs (configs/fusion.py, configs/multimodal.py)."
    )
  step = run.step
  results = subset_predictions(run)
  rows = {name: table_row(*result) for name, result in results.items()}
  modalities = modalities_of(config)
  full_outputs, full_data, _ = next(iter(results.values()))  # the first subset keeps every modality there is
  trained_alone = frozen_modalities(config)
  rows.update(encoder_rows(full_data, modalities, full_outputs, trained_alone))
  if jax.process_index() == 0:
    out = Path(workdir) / "robustness"
    write_table(
      rows,
      out,
      f"{config.model.name}: modalities kept at test time ({which} checkpoint, step {step})",
      {"model": config.model.name, "checkpoint_step": int(step)},
    )
    encoders = {}
    for m, logits in encoder_logits(full_data, modalities, full_outputs, trained_alone).items():
      have = np.asarray(full_data.arrays["present"])[:, modalities.index(m)] > 0
      arrays = {k: np.asarray(full_data.arrays[k])[have] for k in ("id", "label")}
      encoders[m] = ({"logits": logits[have]}, dataclasses.replace(full_data, arrays=arrays, eval_subsets={}))
    write_predictions(
      {name: (outputs, data) for name, (outputs, data, _) in results.items()},
      out,
      modalities,
      run.eval_data.class_names,
      encoders,
    )
  return rows
