"""Collects finished workdirs into one table (figures come from each run's eval/report.json).

  python -m emojax.results runs/fer_deep_cnn runs/fer_hog_logreg
  python -m emojax.results runs/fusion_ablation/* --csv runs/fusion_ablation/results.csv \
      --plot runs/fusion_ablation/results.png

Prints Markdown (`--over-seeds`: one row per group of runs that differ only in `seed=`, mean ± std); `--csv`
also writes every column of every run as CSV; `--plot` draws balanced accuracy per run, runs that differ only in
`seed=` averaged into one bar with the spread over seeds as its error bar.
"""

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

from emojax.metric_writer import read_metrics


def row(workdir: Path) -> dict:
  report_path = workdir / "eval" / "report.json"
  if not report_path.is_file():
    raise FileNotFoundError(f"{report_path} is missing: has the run in {workdir} finished?")
  report = json.loads(report_path.read_text())
  config_path = workdir / "config.json"
  config = json.loads(config_path.read_text()) if config_path.is_file() else {}
  subsets = {k: v for k, v in report.items() if isinstance(v, dict) and k != "all"}
  records = read_metrics(workdir)
  hours = (records[-1]["time"] - records[0]["time"]) / 3600 if len(records) > 1 else None
  return {
      "run": f"{workdir.parent.name}/{workdir.name}" if workdir.name.startswith("fold_") else workdir.name,
      "model": report.get("model", "?"),
      "classes": len(report["all"].get("class_names", [])) or "",
      "width": str(config.get("model", {}).get("width", "")),
      **({"graph": config["model"]["graph"]} if "graph" in config.get("model", {}) else {}),
      **({"seed": config["seed"]} if "seed" in config else {}),
      "epochs": report.get("epochs", ""),
      "wall_hours": f"{hours:.2f}" if hours is not None else "",
      "accuracy": report["all"]["accuracy"],
      "balanced_accuracy": report["all"]["balanced_accuracy"],
      "macro_f1": report["all"]["macro_f1"],
      **({"ECE": report["all"]["expected_calibration_error"]} if "expected_calibration_error" in report["all"] else {}),
      **{f"{name} accuracy": m["accuracy"] for name, m in subsets.items()},
      **_late_validation(records),
  }


def _late_validation(records: list[dict]) -> dict:
  """The best checkpoint is chosen on the validation split, so its figure is optimistic; the final
  evaluation and the mean of the last ten show where training actually settled."""
  values = [r["balanced_accuracy"] for r in records if r.get("split") == "validation" and "balanced_accuracy" in r]
  if not values:
    return {}
  last_ten = values[-10:]
  return {"final balanced_accuracy": values[-1], "last-10 mean balanced_accuracy": float(sum(last_ten) / len(last_ten))}


def markdown(rows: list[dict]) -> str:
  columns = list(dict.fromkeys(k for r in rows for k in r))
  fmt = lambda v: f"{v:.4f}" if isinstance(v, float) and v <= 1 else str(v)
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
  return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
  columns = list(dict.fromkeys(k for r in rows for k in r))
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)


def group_name(run: str) -> str:
  """The run name without its seed: runs that differ only in `seed=` form one group."""
  return re.sub(r"_*seed=\d+", "", run) or run


def over_seeds(rows: list[dict],
               metrics=("accuracy", "balanced_accuracy", "macro_f1", "ECE", "final balanced_accuracy")):
  """One row per group of seeds: each metric's mean and standard deviation, and how many seeds."""
  groups: dict[str, list[dict]] = {}
  for r in rows:
    groups.setdefault(group_name(r["run"]), []).append(r)
  out = []
  for name, members in groups.items():
    row = {"run": name, "model": members[0]["model"], "seeds": len(members)}
    for metric in metrics:
      values = [m[metric] for m in members if isinstance(m.get(metric), float)]
      if values:
        row[metric] = f"{np.mean(values):.4f} ± {np.std(values):.4f}"
    out.append(row)
  return out


def plot(rows: list[dict], path: Path, metric: str = "balanced_accuracy") -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  groups: dict[str, list[float]] = {}
  for r in rows:
    groups.setdefault(group_name(r["run"]), []).append(r[metric])
  names = list(groups)
  means = [float(np.mean(groups[n])) for n in names]
  # Label bars by what differs: parts every run shares ("data=exports") say nothing.
  parts = [re.split(r",|__", n) for n in names]
  common = set.intersection(*(set(p) for p in parts)) if len(parts) > 1 else set()
  labels = [",".join(x for x in p if x not in common) or n for p, n in zip(parts, names)]
  spreads = [float(np.std(groups[n])) for n in names]
  fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(names) + 2), 4.5))
  ax.bar(range(len(names)), means, yerr=spreads, capsize=3, color="tab:blue", alpha=0.8)
  ax.set_xticks(range(len(names)), [f"{label} (n={len(groups[n])})" for label, n in zip(labels, names)], rotation=40,
                ha="right", fontsize=8)
  ax.set_ylabel(f"validation {metric}")
  ax.grid(axis="y", alpha=0.3)
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("workdirs", nargs="+")
  parser.add_argument("--csv", help="also write the table as CSV here")
  parser.add_argument("--plot", help="also draw balanced accuracy per run (mean over seeds) here")
  parser.add_argument("--over-seeds", action="store_true", help="print one row per group of seeds (mean ± std)")
  args = parser.parse_args(argv)
  workdirs = [Path(w) for w in args.workdirs if Path(w).is_dir()]
  unfinished = [w for w in workdirs if not (w / "eval" / "report.json").is_file()]
  if unfinished:  # a sweep still running: collect what has finished, say what has not
    print(f"Left out {len(unfinished)} unfinished run(s) (no eval/report.json): "
          + ", ".join(w.name for w in unfinished), file=sys.stderr)
  rows = [row(w) for w in workdirs if w not in unfinished]
  print(markdown(over_seeds(rows) if args.over_seeds else rows))
  if args.csv:
    write_csv(rows, Path(args.csv))
  if args.plot:
    plot(rows, Path(args.plot))


if __name__ == "__main__":
  main()
