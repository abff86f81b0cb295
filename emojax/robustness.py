"""Missing-modality robustness of a trained fusion model: every subset of modalities kept at test time.

  python -m emojax.main --config configs/fusion.py:method=gat --workdir runs/fusion_gat --mode=robustness

Restores the best (or `--checkpoint=latest`) checkpoint and evaluates the validation tuples once per
non-empty subset of the modalities the tuples have, hiding the others (`present` = 0). Rows left with no modality
are dropped from that subset's figures and counted. Writes `robustness/report.md` and `report.json`.
"""

import dataclasses
import itertools
import json
import logging
from pathlib import Path

import jax
import numpy as np

from emojax import evaluate, train


def subsets(modalities) -> list[tuple[str, ...]]:
  return [combo for size in range(len(modalities), 0, -1) for combo in itertools.combinations(modalities, size)]


def evaluate_missing_modalities(config, workdir, which: str = "best") -> dict:
  exp = train.Experiment(config, workdir, need_train_data=False)
  if "present" not in exp.eval_data.arrays:
    raise ValueError(f"config.data.name={config.data.name!r} has no `present` flags: --mode=robustness is for "
                     "fusion configs (configs/fusion.py).")
  state, step = exp.checkpointer.restore(exp.abstract_state, which)
  # A fusion head names its modalities; end-to-end fusion (configs/multimodal.py) has one encoder per modality.
  modalities = tuple(config.model.modalities if "modalities" in config.model else config.model.encoders)
  present = np.asarray(exp.eval_data.arrays["present"])
  rows = {}
  # Subsets over the modalities some example has: with one missing everywhere, its rows would repeat others.
  for kept in subsets([m for m, column in zip(modalities, present.T) if column.any()]):
    mask = np.array([m in kept for m in modalities], np.float32)
    masked = present * mask
    usable = masked.sum(1) > 0
    if not usable.any():
      logging.info("No example keeps any of %s; left out of the table.", "+".join(kept))
      continue
    arrays = {k: np.asarray(v)[usable] for k, v in exp.eval_data.arrays.items()}
    arrays["present"] = masked[usable]
    data = dataclasses.replace(exp.eval_data, arrays=arrays, eval_subsets={})
    outputs = exp.predict(state, data)
    metrics = evaluate.evaluate_outputs(outputs, data)["all"]
    rows["+".join(kept)] = {"num_examples": int(usable.sum()), "dropped_without_modality": int((~usable).sum()),
                            **{k: metrics[k] for k in evaluate.HEADLINE + ("expected_calibration_error",)}}
  exp.checkpointer.close()
  if jax.process_index() == 0:
    out = Path(workdir) / "robustness"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"model": config.model.name, "checkpoint_step": int(step),
                                                 "subsets": rows}, indent=2))
    lines = [f"# {config.model.name}: modalities kept at test time ({which} checkpoint, step {step})", "",
             "| modalities | examples | accuracy | balanced accuracy | macro-F1 | ECE |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['num_examples']} | {r['accuracy']:.4f} | {r['balanced_accuracy']:.4f} | "
              f"{r['macro_f1']:.4f} | {r['expected_calibration_error']:.4f} |" for name, r in rows.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    logging.info("Wrote %s", out / "report.md")
  return rows
