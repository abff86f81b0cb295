"""Missing-modality robustness of a trained fusion model: every subset of modalities kept at test time.

  python -m emojax.main --config configs/fusion.py:method=gat --workdir runs/fusion_gat --mode=robustness

Restores the best (or `--checkpoint=latest`) checkpoint and evaluates the validation tuples once per
non-empty subset of the modalities the tuples have, hiding the others (`present` = 0). Rows left with no modality
are dropped from that subset's figures and counted. Where the tuples carry each encoder's own logits (fusion on
exports), the table ends with every encoder alone on the same tuples: the single-modality baselines a fused
model has to beat. Writes `robustness/report.md` and `report.json`.
"""

import dataclasses
import itertools
import json
import logging
from pathlib import Path

import jax
import numpy as np

from emojax import evaluate, train
from emojax.data.base import Dataset


def subsets(modalities) -> list[tuple[str, ...]]:
  return [combo for size in range(len(modalities), 0, -1) for combo in itertools.combinations(modalities, size)]


def modalities_of(config) -> tuple[str, ...]:
  # A fusion head names its modalities; end-to-end fusion (configs/multimodal.py) has one encoder per modality.
  return tuple(config.model.modalities if "modalities" in config.model else config.model.encoders)


def subset_predictions(exp: train.Experiment, state) -> dict:
  """{"face+text": (outputs, data, dropped), ...}: the model's outputs with only those modalities present."""
  modalities = modalities_of(exp.config)
  present = np.asarray(exp.eval_data.arrays["present"])
  results = {}
  # Subsets over the modalities some example has: with one missing everywhere, its rows would repeat others.
  for kept in subsets([m for m, column in zip(modalities, present.T) if column.any()]):
    masked = present * np.array([m in kept for m in modalities], np.float32)
    usable = masked.sum(1) > 0
    if not usable.any():
      logging.info("No example keeps any of %s; left out of the table.", "+".join(kept))
      continue
    arrays = {k: np.asarray(v)[usable] for k, v in exp.eval_data.arrays.items()}
    arrays["present"] = masked[usable]
    data = dataclasses.replace(exp.eval_data, arrays=arrays, eval_subsets={})
    results["+".join(kept)] = (exp.predict(state, data), data, int((~usable).sum()))
  return results


def table_row(outputs: dict, data: Dataset, dropped: int) -> dict:
  metrics = evaluate.evaluate_outputs(outputs, data)["all"]
  return {"num_examples": len(data), "dropped_without_modality": dropped,
          **{k: metrics[k] for k in evaluate.HEADLINE + ("expected_calibration_error",)}}


def encoder_rows(data: Dataset, modalities) -> dict:
  """Each encoder alone (its own Ekman-7 logits, where present) on the same tuples, if the data carries them."""
  rows = {}
  for i, m in enumerate(modalities):
    if f"{m}_logits" not in data.arrays:
      continue
    have = np.asarray(data.arrays["present"])[:, i] > 0
    if have.any():
      alone = dataclasses.replace(data, arrays={"label": np.asarray(data.arrays["label"])[have]}, eval_subsets={})
      rows[f"{m} encoder alone"] = table_row({"logits": np.asarray(data.arrays[f"{m}_logits"])[have]}, alone,
                                             int((~have).sum()))
  return rows


def write_table(rows: dict, out: Path, title: str, extra: dict) -> None:
  out.mkdir(parents=True, exist_ok=True)
  (out / "report.json").write_text(json.dumps({**extra, "subsets": rows}, indent=2))
  lines = [f"# {title}", "", "| modalities | examples | accuracy | balanced accuracy | macro-F1 | ECE |",
           "|---|---|---|---|---|---|"]
  lines += [f"| {name} | {r['num_examples']} | {r['accuracy']:.4f} | {r['balanced_accuracy']:.4f} | "
            f"{r['macro_f1']:.4f} | {r['expected_calibration_error']:.4f} |" for name, r in rows.items()]
  (out / "report.md").write_text("\n".join(lines) + "\n")
  logging.info("Wrote %s", out / "report.md")


def evaluate_missing_modalities(config, workdir, which: str = "best") -> dict:
  exp = train.Experiment(config, workdir, need_train_data=False)
  if "present" not in exp.eval_data.arrays:
    raise ValueError(f"config.data.name={config.data.name!r} has no `present` flags: --mode=robustness is for "
                     "fusion configs (configs/fusion.py, configs/multimodal.py).")
  state, step = exp.checkpointer.restore(exp.abstract_state, which)
  rows = {name: table_row(*result) for name, result in subset_predictions(exp, state).items()}
  rows.update(encoder_rows(exp.eval_data, modalities_of(config)))
  exp.checkpointer.close()
  if jax.process_index() == 0:
    write_table(rows, Path(workdir) / "robustness",
                f"{config.model.name}: modalities kept at test time ({which} checkpoint, step {step})",
                {"model": config.model.name, "checkpoint_step": int(step)})
  return rows
