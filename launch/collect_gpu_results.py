"""The results table of one launch/gpu_recipes.sh group (or of several, merged), from the runs' own reports.

  python launch/collect_gpu_results.py --group face --runs /tmp/emojax_gpu/face/runs --out runs/gpu_recipes
  python launch/collect_gpu_results.py --merge runs/gpu_recipes/*_results.json --out runs/gpu_recipes

Every figure is read from a report the evaluator wrote: `<workdir>/eval/report.json` (the best checkpoint of a run
that finished), `eval_best_validation*/report.json` (a run stopped at the window's deadline: its best checkpoint,
evaluated after the stop), `eval_latest_validation*/report.json` (the final checkpoint, speech) and
`ensemble_<checkpoint>_validation/report.json` (ensembles). Commands, budgets and wall times come from the
script's `runs.tsv` and `jobs/` records. Writes `<out>/<group>_results.md` and `.json` (one row per run and
ensemble, a mean +- std row per model over its seeds, the issue's targets against the figures, every command) and
`<out>/<group>_runs.tar.gz` (each run's reports, config, metrics and log; no checkpoints).
"""

import argparse
import datetime
import json
import math
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Columns per group: (heading, report, "/"-separated path in that report). Reports: "best" (the run's best
# checkpoint, or an ensemble's), "final" (the final checkpoint).
COLUMNS = {
  "face": [
    ("accuracy", "best", "all/accuracy"),
    ("balanced acc.", "best", "all/balanced_accuracy"),
    ("macro-F1", "best", "all/macro_f1"),
    ("accuracy w/o train duplicates", "best", "without_train_duplicates/accuracy"),
    ("macro-F1 w/o train duplicates", "best", "without_train_duplicates/macro_f1"),
  ],
  "speech": [
    ("final UA", "final", "all/balanced_accuracy"),
    ("final WA", "final", "all/accuracy"),
    ("final macro-F1", "final", "all/macro_f1"),
    ("best UA", "best", "all/balanced_accuracy"),
    ("best WA", "best", "all/accuracy"),
    ("best macro-F1", "best", "all/macro_f1"),
  ],
  "text": [
    ("macro-F1 cross-fit", "best", "crossfit/macro_f1"),
    ("macro-F1 tuned on dev", "best", "all/macro_f1"),
    ("macro-F1 at 0.5", "best", "threshold_0.5/macro_f1"),
    ("Ekman macro-F1 cross-fit", "best", "ekman_from_28_crossfit/macro_f1"),
  ],
}
# The targets: (what, column, which rows, threshold). Rows: a model label (its seeds: mean and best), or
# an ensemble's name.
TARGETS = {
  "face": [
    ("DeepCNN accuracy (published width)", "accuracy", "deep_cnn", 0.72),
    ("DeepCNN accuracy w/o train duplicates", "accuracy w/o train duplicates", "deep_cnn", 0.72),
    ("best single run accuracy", "accuracy", "*", 0.735),
    ("best single run accuracy w/o train duplicates", "accuracy w/o train duplicates", "*", 0.735),
    ("ensemble accuracy", "accuracy", "ensemble_all", 0.75),
    ("ensemble accuracy w/o train duplicates", "accuracy w/o train duplicates", "ensemble_all", 0.75),
  ],
  "speech": [
    ("8-class final-checkpoint UA", "final UA", "conformer, 8 classes", 0.65),
    ("8-class final-checkpoint UA, ensemble of seeds", "final UA", "ensemble_8classes", 0.65),
  ],
  "text": [
    ("dev macro-F1, cross-fitted thresholds", "macro-F1 cross-fit", "all-MiniLM-L6-v2, 28 labels", 0.52),
    ("dev macro-F1, cross-fitted thresholds, ensemble of seeds", "macro-F1 cross-fit", "ensemble_minilm", 0.52),
  ],
}


def lookup(report: dict | None, path: str):
  value = report
  for key in path.split("/"):
    if not isinstance(value, dict) or key not in value:
      return None
    value = value[key]
  return value if isinstance(value, (int, float)) else None


def read_json(path: Path) -> dict | None:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def first_report(workdir: Path, pattern: str) -> tuple[dict | None, Path | None]:
  for path in sorted(workdir.glob(pattern)):
    report = read_json(path)
    if report is not None:
      return report, path
  return None, None


def job_record(runs: Path, name: str) -> dict:
  """Wall time, exit status and whether the deadline stopped it, from jobs/NAME.{time,stopped}."""
  record = {"wall_seconds": None, "exit_status": None, "stopped": (runs / "jobs" / f"{name}.stopped").is_file()}
  try:
    started, ended, status = (runs / "jobs" / f"{name}.time").read_text().split()
    record.update(wall_seconds=round(float(ended) - float(started), 1), exit_status=int(status))
  except (OSError, ValueError):
    pass
  return record


def epochs_reached(workdir: Path) -> float | None:
  """The last logged training epoch (a stopped run has no report saying how far it got)."""
  sys.path.insert(0, str(REPO))
  from emojax.metric_writer import read_metrics

  epochs = [r["epoch"] for r in read_metrics(workdir) if r.get("split") == "train" and "epoch" in r]
  return round(epochs[-1], 2) if epochs else None


def read_runs(runs: Path) -> list[dict]:
  path = runs / "runs.tsv"
  if not path.is_file():
    raise FileNotFoundError(f"No {path}: --runs is the runs folder of a launch/gpu_recipes.sh window.")
  rows = []
  for line in path.read_text().splitlines():
    name, kind, label, seed, budget, workdir, report, command = line.split("\t")
    rows.append(
      dict(
        name=name,
        kind=kind,
        label=label,
        seed=seed,
        budget=budget,
        workdir=Path(workdir),
        report=report,
        command=command.strip(),
      )
    )
  return rows


def run_row(group: str, runs: Path, entry: dict) -> dict:
  """One table row: a training run (its best and final reports) or an ensemble."""
  record = job_record(runs, entry["name"])
  workdir = entry["workdir"]
  reports, sources = {}, {}
  if entry["kind"] == "ensemble":
    which = "final" if Path(entry["report"]).name.startswith("ensemble_latest") else "best"
    reports[which] = read_json(Path(entry["report"]) / "report.json")
    sources[which] = str(Path(entry["report"]) / "report.json") if reports[which] else None
    status = "ensemble" if reports[which] else f"no report (exit {record['exit_status']})"
    epochs = None
  else:
    finished = read_json(workdir / "eval" / "report.json")
    if finished is not None:
      reports["best"], sources["best"] = finished, str(workdir / "eval" / "report.json")
      status, epochs = "finished", finished.get("epochs")
      if finished.get("input_pipeline", "device") != "device":  # on a GPU the host pipeline starves the chip
        status += f" (input pipeline {finished['input_pipeline']})"
    else:
      reports["best"], path = first_report(workdir, "eval_best_validation*/report.json")
      sources["best"] = str(path) if path else None
      epochs = epochs_reached(workdir)
      if record["stopped"]:
        status = "stopped at the deadline" + (
          ", best checkpoint evaluated" if reports["best"] else ", no checkpoint to evaluate"
        )
      else:
        status = f"failed (exit {record['exit_status']})" if record["exit_status"] else "no report"
    reports["final"], path = first_report(workdir, "eval_latest_validation*/report.json")
    sources["final"] = str(path) if path else None
  row = {
    "name": entry["name"],
    "kind": entry["kind"],
    "label": entry["label"],
    "seed": entry["seed"],
    "budget": entry["budget"],
    "epochs_reached": epochs,
    "wall_seconds": record["wall_seconds"],
    "status": status,
    "command": entry["command"],
    "reports": sources,
  }
  if entry["kind"] == "ensemble":
    best = reports.get("best") or reports.get("final") or {}
    row["members"] = best.get("num_members")
  for heading, which, path in COLUMNS[group]:
    row[heading] = lookup(reports.get(which), path)
  return row


def seed_summaries(group: str, rows: list[dict]) -> list[dict]:
  """Mean +- std over each model's seeds (population std of the runs that have the figure)."""
  out = []
  labels = list(dict.fromkeys(r["label"] for r in rows if r["kind"] == "train"))
  for label in labels:
    members = [r for r in rows if r["kind"] == "train" and r["label"] == label]
    summary = {"name": f"{label}: mean of {len(members)} seeds", "kind": "seeds", "label": label}
    for heading, _, _ in COLUMNS[group]:
      values = [r[heading] for r in members if r[heading] is not None]
      if values:
        mean = sum(values) / len(values)
        summary[heading] = {
          "mean": mean,
          "std": math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)),
          "n": len(values),
        }
      else:
        summary[heading] = None
    out.append(summary)
  return out


def check_targets(group: str, rows: list[dict]) -> list[dict]:
  results = []
  for what, heading, selector, threshold in TARGETS[group]:
    if selector == "*":
      values = [r[heading] for r in rows if r["kind"] == "train" and r[heading] is not None]
    elif selector.startswith("ensemble_"):
      values = [r[heading] for r in rows if r["name"] == selector and r[heading] is not None]
    else:
      values = [r[heading] for r in rows if r["kind"] == "train" and r["label"] == selector and r[heading] is not None]
    entry = {"target": what, "threshold": threshold, "runs": len(values)}
    if values:
      entry.update(
        best=max(values),
        mean=sum(values) / len(values),
        met=max(values) >= threshold if selector == "*" else sum(values) / len(values) >= threshold,
      )
    results.append(entry)
  return results


def device_description() -> str:
  try:
    import jax

    device = jax.devices()[0]
    return f"{device.device_kind} ({device.platform}), jax {jax.__version__}"
  except Exception as error:  # the table is still worth writing without it
    return f"unknown ({error})"


def fmt(value) -> str:
  if value is None:
    return ""
  if isinstance(value, dict):
    return f"{value['mean']:.4f} ± {value['std']:.4f}"
  if isinstance(value, float):
    return f"{value:.4f}"
  return str(value)


def markdown(result: dict) -> str:
  group = result["group"]
  headings = [h for h, _, _ in COLUMNS[group]]
  lines = [
    f"# GPU recipes: {group}",
    "",
    f"- date: {result['date']} (UTC); window wall time {result['wall_seconds']:.0f} s"
    if result["wall_seconds"] is not None
    else f"- date: {result['date']} (UTC)",
    f"- budget: {result['budget']}; device: {result['device']}",
    f"- pack: {result['pack']}",
    "",
  ]
  columns = ["run", "seed", "budget", "epochs", "wall s", *headings, "status"]
  lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for row in result["rows"]:
    name = row["name"] + (f" ({row['members']} members)" if row.get("members") else "")
    epochs = "" if row["epochs_reached"] is None else f"{row['epochs_reached']:g}"
    wall = "" if row["wall_seconds"] is None else f"{row['wall_seconds']:.0f}"
    cells = [name, row["seed"], row["budget"], epochs, wall, *[fmt(row[h]) for h in headings], row["status"]]
    lines.append("| " + " | ".join(str(c) for c in cells) + " |")
  for summary in result["seed_summaries"]:
    cells = [summary["name"], "", "", "", "", *[fmt(summary[h]) for h in headings], "mean ± std"]
    lines.append("| " + " | ".join(cells) + " |")
  lines += [
    "",
    "## Targets (issue 15)",
    "",
    "| target | threshold | runs | mean | best | met |",
    "|---|---|---|---|---|---|",
  ]
  for t in result["targets"]:
    met = "" if "met" not in t else ("yes" if t["met"] else "no")
    lines.append(
      f"| {t['target']} | {t['threshold']} | {t['runs']} | {fmt(t.get('mean'))} | {fmt(t.get('best'))} | {met} |"
    )
  lines += [
    "",
    "A target on a model's seeds is met when their mean reaches it; the best single run's, when one run "
    "does. Figures are validation figures (FER2013 PublicTest, RAVDESS actors 17-20, GoEmotions dev).",
    "",
    "## Commands",
    "",
    "| run | command |",
    "|---|---|",
  ]
  lines += [f"| {row['name']} | `{row['command']}` |" for row in result["rows"]]
  return "\n".join(lines) + "\n"


def archive(rows: list[dict], runs: Path, path: Path) -> None:
  """Each run's small files (reports, plots, config, metrics, summary) and every job's log, no checkpoints."""
  keep = ("config.json", "summary.md", "metrics.jsonl", "training_curves.png")
  with tarfile.open(path, "w:gz") as tar:
    for name in ("runs.tsv",):
      if (runs / name).is_file():
        tar.add(runs / name, arcname=name)
    for log in sorted((runs / "jobs").glob("*.log")):
      tar.add(log, arcname=f"logs/{log.name}")
    workdirs = list(dict.fromkeys(r["workdir"] for r in rows if r["kind"] == "train"))
    for workdir in workdirs:
      for file in sorted(p for p in workdir.rglob("*") if p.is_file()):
        relative = file.relative_to(workdir)
        top = relative.parts[0]
        if top in ("checkpoints", "best") or file.suffix == ".npz":
          continue
        if len(relative.parts) == 1 and relative.name not in keep:
          continue
        tar.add(file, arcname=f"{workdir.name}/{relative}")


def collect(group: str, runs: Path, out: Path, budget: str, started: float | None, manifest_path: Path | None) -> dict:
  entries = read_runs(runs)
  rows = [run_row(group, runs, e) for e in entries if e["kind"] in ("train", "ensemble")]
  manifest = read_json(manifest_path) if manifest_path else None
  now = datetime.datetime.now(datetime.timezone.utc)
  result = {
    "group": group,
    "date": now.isoformat(timespec="seconds"),
    "budget": budget,
    "device": device_description(),
    "wall_seconds": round(now.timestamp() - started, 1) if started else None,
    "pack": (
      f"{manifest['data_files']} data files, subset {manifest['subset']}, made {manifest['created']}"
      if manifest
      else "unknown"
    ),
    "rows": rows,
    "seed_summaries": seed_summaries(group, rows),
    "targets": check_targets(group, rows),
  }
  out.mkdir(parents=True, exist_ok=True)
  (out / f"{group}_results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
  (out / f"{group}_results.md").write_text(markdown(result))
  archive(entries, runs, out / f"{group}_runs.tar.gz")
  return result


def merge(paths: list[Path], out: Path) -> str:
  """The groups' tables one after another, and their targets in one table."""
  results = [json.loads(Path(p).read_text()) for p in paths]
  parts = [
    "# GPU recipes: all groups",
    "",
    "| group | target | threshold | runs | mean | best | met |",
    "|---|---|---|---|---|---|---|",
  ]
  for result in results:
    for t in result["targets"]:
      met = "" if "met" not in t else ("yes" if t["met"] else "no")
      parts.append(
        f"| {result['group']} | {t['target']} | {t['threshold']} | {t['runs']} | {fmt(t.get('mean'))} | "
        f"{fmt(t.get('best'))} | {met} |"
      )
  text = (
    "\n".join(parts)
    + "\n\n"
    + "\n".join(markdown(r).replace("# GPU recipes", "## GPU recipes", 1).replace("\n## ", "\n### ") for r in results)
  )
  out.mkdir(parents=True, exist_ok=True)
  (out / "results.md").write_text(text)
  (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  return text


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--group", choices=sorted(COLUMNS))
  parser.add_argument("--runs", type=Path, help="the runs folder of the window (holds runs.tsv and jobs/)")
  parser.add_argument("--out", type=Path, required=True)
  parser.add_argument("--budget", default="full")
  parser.add_argument("--started", type=float, default=None, help="the window's start (seconds since the epoch)")
  parser.add_argument("--manifest", type=Path, default=None, help="the pack's manifest.json")
  parser.add_argument("--merge", type=Path, nargs="+", default=None, help="<group>_results.json files to merge")
  args = parser.parse_args(argv)
  if args.merge:
    print(merge(args.merge, args.out))
    return 0
  if args.group is None or args.runs is None:
    parser.error("--group and --runs are required (or --merge).")
  try:
    result = collect(args.group, args.runs, args.out, args.budget, args.started, args.manifest)
  except FileNotFoundError as error:
    print(f"collect_gpu_results: {error}", file=sys.stderr)
    return 2
  print(markdown(result))
  missing = [
    r["name"]
    for r in result["rows"]
    if not r["status"].startswith(("finished", "ensemble")) and not r["status"].endswith("best checkpoint evaluated")
  ]
  if missing:
    print(
      f"collect_gpu_results: no figures for {missing}; see their logs in {args.out}/{args.group}_runs.tar.gz",
      file=sys.stderr,
    )
  return 1 if missing else 0


if __name__ == "__main__":
  sys.exit(main())
