"""Collects finished workdirs into one Markdown table (figures come from each run's eval/report.json).

  python -m emojax.results runs/fer_deep_cnn runs/fer_hog_logreg
"""

import json
import sys
from pathlib import Path

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
      "epochs": report.get("epochs", ""),
      "wall_hours": f"{hours:.2f}" if hours is not None else "",
      "accuracy": report["all"]["accuracy"],
      "balanced_accuracy": report["all"]["balanced_accuracy"],
      "macro_f1": report["all"]["macro_f1"],
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


def main(argv: list[str]) -> None:
  if not argv:
    sys.exit(__doc__)
  print(markdown([row(Path(w)) for w in argv]))


if __name__ == "__main__":
  main(sys.argv[1:])
