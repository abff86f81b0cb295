"""Reports and plots of an evaluation: report.json / report.md, confusion matrices, training curves, and the one
Markdown table writer every report uses."""

import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from emojax.metrics import HEADLINE  # noqa: E402


def markdown_table(rows: list, columns=None, number=lambda v: f"{v:.4f}") -> list[str]:
  """A Markdown table as lines. `rows` are dicts (`columns`: their keys in first-seen order by default; a missing
  key is an empty cell) or sequences in `columns` order; floats are written by `number`, and a `|` or line break
  inside a cell cannot break the table."""
  columns = list(columns or dict.fromkeys(k for r in rows for k in r))
  cells = [[r.get(c, "") for c in columns] if isinstance(r, dict) else list(r) for r in rows]
  escape = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
  cell = lambda v: escape(number(v) if isinstance(v, float) else v)
  return ["| " + " | ".join(map(escape, columns)) + " |", "|" + "---|" * len(columns)] + [
    "| " + " | ".join(cell(v) for v in row) + " |" for row in cells
  ]


def write_report(report: dict, out_dir: str | Path, title: str) -> None:
  """report.json, report.md and confusion_matrix.{png,json} for each evaluated subset."""
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "report.json").write_text(json.dumps(report, indent=2))
  lines = [f"# {title}", ""]
  for subset, metrics in report.items():
    if not isinstance(metrics, dict) or "per_class" not in metrics:
      continue
    suffix = "" if subset == "all" else f"_{subset}"
    if "confusion_matrix" in metrics:
      save_confusion_matrix(metrics, out_dir / f"confusion_matrix{suffix}", f"{title} ({subset})")
    lines += [f"## {subset} ({metrics['num_examples']} examples)", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {metrics[k]:.4f} |" for k in HEADLINE + ("macro_precision", "macro_recall")]
    if "thresholds" in metrics:
      lines += [f"| {metrics['threshold_note']} | |"]
    threshold = lambda name: f" {metrics['thresholds'][name]:.2f} |" if "thresholds" in metrics else ""
    lines += [
      "",
      "| class | precision | recall | f1 | support |" + (" threshold |" if "thresholds" in metrics else ""),
      "|---|---|---|---|---|" + ("---|" if "thresholds" in metrics else ""),
    ]
    lines += [
      f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |{threshold(name)}"
      for name, m in metrics["per_class"].items()
    ]
    if "group_weights_per_class" in metrics:
      groups = list(metrics["group_weights"])
      lines += [
        "",
        "Adaptive feature weighting (mean weight of each feature group):",
        "",
        "| class | " + " | ".join(groups) + " |",
        "|---|" + "---|" * len(groups),
        "| all | " + " | ".join(f"{metrics['group_weights'][g]:.3f}" for g in groups) + " |",
      ]
      lines += [
        f"| {name} | " + " | ".join(f"{w[g]:.3f}" for g in groups) + " |"
        for name, w in metrics["group_weights_per_class"].items()
      ]
    lines.append("")
  extra = {k: v for k, v in report.items() if not isinstance(v, dict)}
  if extra:
    lines += ["## run", ""] + [f"- {k}: {v}" for k, v in extra.items()]
  (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def save_confusion_matrix(metrics: dict, path_stem: Path, title: str) -> None:
  confusion = np.array(metrics["confusion_matrix"])
  names = metrics["class_names"]
  Path(f"{path_stem}.json").write_text(
    json.dumps({"class_names": names, "rows_true_columns_predicted": confusion.tolist()})
  )
  normalized = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
  fig, ax = plt.subplots(figsize=(6.5, 5.5))
  image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
  for i in range(len(names)):
    for j in range(len(names)):
      ax.text(
        j,
        i,
        f"{confusion[i, j]}\n{normalized[i, j]:.2f}",
        ha="center",
        va="center",
        fontsize=7,
        color="white" if normalized[i, j] > 0.5 else "black",
      )
  ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
  ax.set_yticks(range(len(names)), names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title, fontsize=9)
  fig.colorbar(image, ax=ax, fraction=0.046)
  fig.tight_layout()
  fig.savefig(f"{path_stem}.png", dpi=120)
  plt.close(fig)


def plot_training_curves(records: list[dict], path: str | Path) -> None:
  """Loss and accuracy against step, train and validation, from metrics.jsonl records."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for ax, key in zip(axes, ("loss", "accuracy")):
    for split, style in (("train", "-"), ("validation", "o-")):
      points = [(r["step"], r[key]) for r in records if r.get("split") == split and key in r]
      if points:
        steps, values = zip(*points)
        ax.plot(steps, values, style, label=split, markersize=3)
    ax.set_xlabel("step")
    ax.set_title(key)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
