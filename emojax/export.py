"""Export a trained model's outputs per example, for fusion on frozen encoders and for analysis.

  python -m emojax.main --config configs/speech.py:model=conformer,labels=ekman7 --workdir runs/x --mode=export

Restores the best (or `--checkpoint=latest`) checkpoint and writes `export/<split>.npz` for the training
and evaluation splits: `embedding` [N, D] (the features the classifier reads), `logits` [N, C] (plus
`confidence` / `sentiment_logits` where the model has them), the labels (`label` or multi-hot `labels`),
`id`, `speaker` (speech corpora: cross-fitted fusion keeps a speaker's rows in one fold) and `class_names`.
Training rows are read without augmentation, in the reader's order.
"""

import logging
from pathlib import Path

import jax
import numpy as np

from emojax import prediction, restore
from emojax.data import load_split


def export_outputs(config, workdir, which: str = "best", splits: tuple[str, ...] | None = None) -> Path:
  run = restore.restore_run(config, workdir, which)
  step = run.step
  predict_step = prediction.make_predict_step(run.model, keys=prediction.PREDICTION_KEYS + ("embedding",))
  out_dir = Path(workdir) / "export"
  for split in splits or ("train", config.data.eval_split):
    data = run.eval_data if split == config.data.eval_split else load_split(config.data, split)
    outputs = run.predict(data, predict_step)
    if jax.process_index() == 0:
      out_dir.mkdir(parents=True, exist_ok=True)
      labels = {
        key: np.asarray(data.arrays[key]) for key in ("label", "labels", "labels_28", "speaker") if key in data.arrays
      }
      np.savez_compressed(
        out_dir / f"{split}.npz",
        id=np.asarray(data.arrays["id"]).astype(str),
        class_names=np.asarray(data.class_names),
        checkpoint_step=int(step),
        **labels,
        **{k: np.asarray(v, np.float32) for k, v in outputs.items()},
      )
      logging.info(
        "Exported %d %s rows of %s (step %d) to %s", len(data), split, config.model.name, step, out_dir / f"{split}.npz"
      )
  return out_dir
