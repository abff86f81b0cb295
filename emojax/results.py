"""Collects finished workdirs into one table (figures come from each run's eval/report.json).

  python -m emojax.results runs/fer_deep_cnn runs/fer_hog_logreg
  python -m emojax.results runs/fusion_ablation/* --csv runs/fusion_ablation/results.csv \
      --plot runs/fusion_ablation/results.png

Prints Markdown (`--over-seeds`: one row per group of runs that differ only in `seed=`, mean ± std); `--csv`
also writes every column of every run as CSV; `--plot` draws balanced accuracy per run, runs that differ only in
`seed=` averaged into one bar with the spread over seeds as its error bar.

`--bootstrap` (fusion runs with `robustness/predictions.npz`, i.e. after `--mode=robustness`) adds, per group of
seeds, the gain of the fused model over the best single-modality group (runs of one modality; "best" by its mean
over seeds) and its 95% bootstrap interval: the validation examples are resampled with replacement (`--resamples`
times) and both groups, each averaged over its seeds, are scored on every resample, so the interval covers the
example-level sampling error of the difference (not the spread over seeds, which the ± columns show).
`--baseline <group>` compares against that group instead (e.g. the context graph against per-utterance fusion).

  python -m emojax.results runs/aligned_ravdess_av/* --over-seeds --bootstrap --metric balanced_accuracy

`--robustness` prints instead, per group of seeds, the metric with every subset of modalities kept at test time
(each run's `robustness/report.json`, averaged over seeds), expected calibration error in brackets.
"""

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

from emojax import reports
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
  return "\n".join(reports.markdown_table(rows, number=lambda v: f"{v:.4f}" if v <= 1 else str(v)))


def write_csv(rows: list[dict], path: Path) -> None:
  columns = list(dict.fromkeys(k for r in rows for k in r))
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)


def group_name(run: str) -> str:
  """The run name without its seed: runs that differ only in `seed=` form one group."""
  return re.sub(r"_*seed=\d+", "", run) or run


def over_seeds(
  rows: list[dict], metrics=("accuracy", "balanced_accuracy", "macro_f1", "ECE", "final balanced_accuracy")
):
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


# ----------------------------------------------------------------------------------------------
# Bootstrap intervals of fused minus best single modality, example by example.
# ----------------------------------------------------------------------------------------------
BOOTSTRAP_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def predictions(workdir: Path) -> dict | None:
  """{"modalities", "id", "label", "prediction", "num_classes"} of a run's full-modality robustness subset, or None
  without `robustness/predictions.npz`."""
  path = workdir / "robustness" / "predictions.npz"
  if not path.is_file():
    return None
  with np.load(path, allow_pickle=False) as saved:
    full = str(saved["subsets"][0])  # subsets come largest first: the first keeps every modality
    return {
      "modalities": tuple(str(m) for m in saved["modalities"]),
      "id": saved[f"{full}.id"].astype(str),
      "label": saved[f"{full}.label"],
      "prediction": saved[f"{full}.logits"].argmax(-1),
      "num_classes": len(saved["class_names"]),
    }


def resampled_metric(labels: np.ndarray, predicted: np.ndarray, num_classes: int, metric: str) -> np.ndarray:
  """`metric` on each resample: labels and predictions [R, n] -> [R], as `metrics.classification_metrics` defines
  it (balanced accuracy over the classes present; macro-F1 over every class, 0 where undefined)."""
  correct = (labels == predicted).astype(np.float64)
  if metric == "accuracy":
    return correct.mean(1)
  truth = np.eye(num_classes)[labels]  # [R, n, K]
  hits = (truth * correct[..., None]).sum(1)  # [R, K]
  support = truth.sum(1)
  if metric == "balanced_accuracy":
    recall = np.where(support > 0, hits / np.maximum(support, 1), 0.0)
    return recall.sum(1) / np.maximum((support > 0).sum(1), 1)
  if metric == "macro_f1":
    predicted_count = np.eye(num_classes)[predicted].sum(1)
    denominator = support + predicted_count
    return np.where(denominator > 0, 2 * hits / np.maximum(denominator, 1), 0.0).mean(1)
  raise ValueError(f"--metric={metric!r}; choose one of {BOOTSTRAP_METRICS}.")


def bootstrap_gains(
  workdirs: list[Path], metric: str = "balanced_accuracy", resamples: int = 2000, seed: int = 0, baseline: str = ""
) -> dict[str, dict]:
  """{group: {"modalities", metric, "best single", "gain", "low", "high"}} for every group of seeds whose runs
  have predictions: the gain of its seed-averaged metric over the best single-modality group's (or the group
  `baseline` names), and the 2.5 and 97.5 percentiles of that gain over `resamples` resamples of the examples
  every run scored."""
  runs = {w: p for w in workdirs if (p := predictions(w)) is not None}
  if not runs:
    return {}
  common = set.intersection(*(set(p["id"]) for p in runs.values()))
  if any(len(p["id"]) != len(common) for p in runs.values()):
    print(
      f"Bootstrap: the runs score different examples; compared on the {len(common)} every run has.", file=sys.stderr
    )
  ids = np.array(sorted(common))
  groups: dict[str, list[dict]] = {}
  for workdir, p in runs.items():
    order = {key: i for i, key in enumerate(p["id"])}
    rows = np.array([order[key] for key in ids])
    groups.setdefault(group_name(workdir.name), []).append(
      {**p, "label": p["label"][rows], "prediction": p["prediction"][rows]}
    )
  labels = next(iter(groups.values()))[0]["label"]
  num_classes = next(iter(groups.values()))[0]["num_classes"]
  draws = np.random.default_rng(seed).integers(0, len(ids), (resamples, len(ids)))
  draws = np.concatenate([np.arange(len(ids))[None], draws])  # row 0: the examples as they are
  scores = {
    name: np.mean([resampled_metric(labels[draws], m["prediction"][draws], num_classes, metric) for m in members], 0)
    for name, members in groups.items()
  }
  singles = {name: s for name, s in scores.items() if len(groups[name][0]["modalities"]) == 1}
  if baseline and baseline not in scores:
    raise ValueError(f"--baseline={baseline!r} is not a group of these runs; they are {sorted(scores)}.")
  if not baseline and not singles:
    print(
      "Bootstrap: no single-modality runs to compare against (runs of one modality, e.g. modalities=face).",
      file=sys.stderr,
    )
    return {}
  best = baseline or max(singles, key=lambda name: singles[name][0])
  out = {}
  for name, score in scores.items():
    gain = score - scores[best]
    out[name] = {
      "modalities": "+".join(groups[name][0]["modalities"]),
      metric: float(score[0]),
      "best single": best,
      "gain": float(gain[0]),
      "low": float(np.percentile(gain[1:], 2.5)),
      "high": float(np.percentile(gain[1:], 97.5)),
    }
  return out


def with_gains(rows: list[dict], gains: dict[str, dict], metric: str, baseline: str = "") -> list[dict]:
  """The over-seeds rows with each group's gain over the best single modality, or `baseline` (points, 95%
  interval)."""
  column = f"{metric} − {baseline or 'best single'} (points, 95% CI)"
  for row in rows:
    if row["run"] in gains and gains[row["run"]]["best single"] != row["run"]:
      g = gains[row["run"]]
      row[column] = f"{100 * g['gain']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]"
  return rows


def robustness_table(workdirs: list[Path], metric: str = "balanced_accuracy") -> list[dict]:
  """One row per group of seeds: `metric` (ECE) of every subset of modalities in `robustness/report.json`, the mean
  over the group's seeds."""
  groups: dict[str, list[dict]] = {}
  for workdir in workdirs:
    path = workdir / "robustness" / "report.json"
    if path.is_file():
      groups.setdefault(group_name(workdir.name), []).append(json.loads(path.read_text())["subsets"])
  seen = list(dict.fromkeys(subset for members in groups.values() for m in members for subset in m))
  # Columns: the most modalities first, then each alone, then each encoder alone (trained on its own).
  columns = sorted(seen, key=lambda s: (s.endswith("encoder alone"), -s.count("+"), seen.index(s)))
  rows = []
  for name, members in groups.items():
    row = {"run": name, "seeds": len(members)}
    for subset in columns:
      values = [m[subset] for m in members if subset in m]
      row[subset] = (
        (
          f"{np.mean([v[metric] for v in values]):.3f} "
          f"({np.mean([v['expected_calibration_error'] for v in values]):.3f})"
        )
        if values
        else ""
      )
    rows.append(row)
  return rows


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
  ax.set_xticks(
    range(len(names)),
    [f"{label} (n={len(groups[n])})" for label, n in zip(labels, names)],
    rotation=40,
    ha="right",
    fontsize=8,
  )
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
  parser.add_argument(
    "--bootstrap",
    action="store_true",
    help="with --over-seeds: each group's gain over the best single-modality group, 95%% interval",
  )
  parser.add_argument(
    "--metric", default="balanced_accuracy", choices=BOOTSTRAP_METRICS, help="the metric --bootstrap compares"
  )
  parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of the examples")
  parser.add_argument(
    "--baseline",
    default="",
    help="--bootstrap against this group of seeds (a run name without "
    "its seed) instead of the best single-modality group",
  )
  parser.add_argument(
    "--robustness",
    action="store_true",
    help="print --metric (ECE) of every subset of modalities kept at test time, per group of seeds",
  )
  args = parser.parse_args(argv)
  workdirs = [Path(w) for w in args.workdirs if Path(w).is_dir()]
  unfinished = [w for w in workdirs if not (w / "eval" / "report.json").is_file()]
  if unfinished:  # a sweep still running: collect what has finished, say what has not
    print(
      f"Left out {len(unfinished)} unfinished run(s) (no eval/report.json): " + ", ".join(w.name for w in unfinished),
      file=sys.stderr,
    )
  if args.robustness:
    print(markdown(robustness_table([w for w in workdirs if w not in unfinished], args.metric)))
    return
  rows = [row(w) for w in workdirs if w not in unfinished]
  table = over_seeds(rows) if args.over_seeds or args.bootstrap else rows
  if args.bootstrap:
    gains = bootstrap_gains(
      [w for w in workdirs if w not in unfinished], args.metric, args.resamples, baseline=args.baseline
    )
    table = with_gains(table, gains, args.metric, args.baseline)
  print(markdown(table))
  if args.csv:
    write_csv(rows, Path(args.csv))
  if args.plot:
    plot(rows, Path(args.plot))


if __name__ == "__main__":
  main()
