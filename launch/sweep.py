"""Runs a sweep of experiments one after another on this machine, or prints their commands for a cluster.

  python launch/sweep.py launch/sweeps/fusion_ablation.py --root runs/fusion_ablation          # run locally
  python launch/sweep.py launch/sweeps/fusion_ablation.py --root runs/fusion_ablation --print  # commands only
  python launch/sweep.py ... --shard=0/2 & python launch/sweep.py ... --shard=1/2              # two runners
  python -m emojax.results runs/fusion_ablation/* --csv runs/fusion_ablation/results.csv \
      --plot runs/fusion_ablation/results.png                                                  # one table

A sweep file defines `get_sweep()` returning a list of runs; a run is a dict with `config` (a config file
with its `:arg` variants), optionally `mode` (emojax.main's --mode, e.g. crossfit; several joined by `+` run one
after another in the same workdir, e.g. "train+robustness") and `name` (its workdir's name), and any number of
`config.<field>` overrides. `product` and `zip_runs` below build such lists from axes, scenic / big_vision
style. Each run's workdir is `<root>/<name>`, the name made of the values that vary; a finished step (its
report present: eval/report.json for train and crossfit, robustness/report.json, export/train.npz) is skipped,
an interrupted one resumes.
"""

import argparse
import importlib.util
import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DONE = {
  "train": "eval/report.json",
  "crossfit": "eval/report.json",
  "robustness": "robustness/report.json",
  "export": "export/train.npz",
}  # what a finished step of each mode leaves in its workdir


def product(**axes) -> list[dict]:
  """Every combination of the axes' values: product(config=[a, b], **{"config.seed": [0, 1]}) -> 4 runs."""
  names = list(axes)
  return [dict(zip(names, values)) for values in itertools.product(*(axes[n] for n in names))]


def zip_runs(**axes) -> list[dict]:
  """The axes' values side by side (all the same length)."""
  lengths = {name: len(values) for name, values in axes.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"zip_runs needs axes of one length; got {lengths}.")
  return [dict(zip(axes, values)) for values in zip(*axes.values())]


def run_name(run: dict, varying: list[str]) -> str:
  """`name` if the run gives one, else the values of the keys that vary across the sweep (those it has)."""
  if "name" in run:
    name = str(run["name"])
  else:
    parts = []
    for key in (k for k in varying if k in run):
      value = str(run[key]).split(":", 1)[-1] if key == "config" else str(run[key])
      parts.append(f"{key.removeprefix('config.').replace('.', '_')}={value}" if key != "config" else value)
    name = "__".join(parts)
  return re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", name) or "run"


def commands(sweep: list[dict], root: Path, python: str) -> list[tuple[Path, list[tuple[str, list[str]]]]]:
  """(workdir, [(mode, command), ...]) per run: one emojax.main command per step of its `mode`."""
  for run in sweep:
    if "config" not in run:
      raise ValueError(f"Every run needs a `config` (e.g. 'configs/fusion.py:method=gat'); got {run}.")
    bad = [k for k in run if k not in ("config", "mode", "name") and not k.startswith("config.")]
    if bad:
      raise ValueError(
        f"Run keys must be `config`, `mode` (emojax.main's --mode), `name` (the workdir's) or "
        f"`config.<field>`; got {bad} in {run}."
      )
  varying = [k for k in dict.fromkeys(k for run in sweep for k in run) if len({str(run.get(k)) for run in sweep}) > 1]
  out = []
  for run in sweep:
    workdir = root / run_name(run, varying)
    base = [python, "-m", "emojax.main", "--config", run["config"], "--workdir", str(workdir)]
    overrides = [f"--{key}={value}" for key, value in run.items() if key not in ("config", "name", "mode")]
    steps = str(run.get("mode", "train")).split("+")
    out.append((workdir, [(step, base + ([f"--mode={step}"] if "mode" in run else []) + overrides) for step in steps]))
  names = [w.name for w, _ in out]
  if len(set(names)) != len(names):
    raise ValueError("Two runs of the sweep get the same workdir name; make the runs differ.")
  return out


def load_sweep(path: str) -> list[dict]:
  spec = importlib.util.spec_from_file_location("sweep_definition", path)
  if spec is None:
    raise FileNotFoundError(f"No sweep file at {path}.")
  module = importlib.util.module_from_spec(spec)
  sys.path.insert(0, str(Path(__file__).resolve().parent))  # `from sweep import product`
  sys.path.insert(0, str(Path(path).resolve().parent))  # a sweep may reuse its neighbours' axes
  spec.loader.exec_module(module)
  return module.get_sweep()


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("sweep", help="a Python file defining get_sweep()")
  parser.add_argument("--root", required=True, help="the folder that holds one workdir per run")
  parser.add_argument("--print", action="store_true", help="print the commands instead of running them")
  parser.add_argument("--python", default=sys.executable)
  parser.add_argument("--shard", default="0/1", help="i/n: only every n-th run from the i-th (n runners side by side)")
  args = parser.parse_args(argv)
  index, _, count = args.shard.partition("/")
  if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
    raise SystemExit(f"--shard={args.shard!r}: write i/n with 0 <= i < n, e.g. --shard=1/2.")
  planned = commands(load_sweep(args.sweep), Path(args.root), args.python)[int(index) :: int(count)]
  failed = []
  for workdir, steps in planned:
    if args.print:
      for _, command in steps:
        print(shlex.join(command))
      continue
    todo = [(mode, command) for mode, command in steps if not (mode in DONE and (workdir / DONE[mode]).is_file())]
    if not todo:
      print(f"done already: {workdir}")
      continue
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"running {workdir} ({len(planned)} runs in all)", flush=True)
    with open(workdir / "train.log", "a") as log:
      for mode, command in todo:
        if subprocess.call(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT) != 0:
          failed.append(workdir)
          print(f"FAILED: {workdir} --mode={mode} (see {workdir / 'train.log'})", flush=True)
          break
  if failed:
    print(f"{len(failed)} of {len(planned)} runs failed.")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
