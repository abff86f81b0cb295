"""Feature-space views: PCA and t-SNE of a trained model's pooled embeddings, coloured by label.

  python -m emojax.main --config configs/text.py --workdir runs/goemotions28_minilm --mode=views

Restores the best (or `--checkpoint=latest`) checkpoint, embeds the evaluation split (every model
returns `embedding`, the features its classifier reads) and writes `views/pca.png`, `views/tsne.png`
and `views/embeddings.npz`. Multi-label rows are coloured when they carry exactly one label of the
colouring space (GoEmotions: its Ekman groups, so 7 colours instead of 28); the rest are left out
of the plots and counted in the title.
"""

import logging
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from emojax import prediction, restore  # noqa: E402


def colour_labels(dataset) -> tuple[np.ndarray, tuple[str, ...]]:
  """(label index per row, -1 where it has no single label; names) of the space the plots colour by."""
  if not dataset.multi_label:
    return np.asarray(dataset.arrays["label"]), dataset.class_names
  multi_hot, names = np.asarray(dataset.arrays["labels"]), dataset.class_names
  groupings = dataset.metadata.get("groupings", {})
  if "ekman" in groupings and "labels_28" in dataset.arrays and multi_hot.shape[1] == 28:
    names, matrix = groupings["ekman"]
    multi_hot = (np.asarray(dataset.arrays["labels_28"]) @ matrix) > 0
  single = multi_hot.sum(1) == 1
  return np.where(single, multi_hot.argmax(1), -1), tuple(names)


def project(embeddings: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
  """2-D PCA and t-SNE (on the top 50 principal components, perplexity 30) of standardised embeddings."""
  from sklearn.decomposition import PCA
  from sklearn.manifold import TSNE

  x = (embeddings - embeddings.mean(0)) / (embeddings.std(0) + 1e-6)
  components = PCA(n_components=min(50, x.shape[1], len(x)), random_state=seed).fit_transform(x)
  perplexity = min(30.0, (len(x) - 1) / 3)
  tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(components)
  return {"pca": components[:, :2], "tsne": tsne}


def scatter(points: np.ndarray, colours: np.ndarray, names, title: str, path: Path) -> None:
  fig, ax = plt.subplots(figsize=(7.5, 6.5))
  palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
  for index, name in enumerate(names):
    chosen = colours == index
    if chosen.any():
      ax.scatter(*points[chosen].T, s=4, alpha=0.6, color=palette(index % palette.N), label=f"{name} ({chosen.sum()})")
  ax.set_title(title, fontsize=9)
  ax.legend(markerscale=3, fontsize=7, loc="best")
  ax.set_xticks([])
  ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)


def write_feature_views(config, workdir, which: str = "best", max_points: int = 4000) -> Path:
  run = restore.restore_run(config, workdir, which)
  step = run.step
  predict_step = prediction.make_predict_step(run.model, keys=("embedding",))
  outputs = run.predict(predict_step=predict_step)
  colours, names = colour_labels(run.eval_data)
  labelled = np.flatnonzero(colours >= 0)
  chosen = np.sort(np.random.default_rng(0).permutation(labelled)[:max_points])
  out_dir = Path(workdir) / "views"
  if jax.process_index() == 0:
    out_dir.mkdir(parents=True, exist_ok=True)
    embeddings = np.asarray(outputs["embedding"], np.float32)
    views = project(embeddings[chosen])
    what = (
      f"{config.model.name} ({which} checkpoint, step {step}), {config.data.name} {config.data.eval_split}: "
      f"{len(chosen)} of {len(colours)} rows ({len(colours) - len(labelled)} without a single label left out)"
    )
    for name, points in views.items():
      scatter(points, colours[chosen], names, f"{name.upper()} of pooled embeddings\n{what}", out_dir / f"{name}.png")
    np.savez_compressed(
      out_dir / "embeddings.npz",
      embeddings=embeddings,
      ids=np.asarray(run.eval_data.arrays["id"]),
      colours=colours,
      class_names=np.asarray(names),
      plotted=chosen,
      **views,
    )
    logging.info("Wrote %s/pca.png, tsne.png, embeddings.npz (%d points plotted)", out_dir, len(chosen))
  return out_dir
