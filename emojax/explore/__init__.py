"""`emojax explore`: the exploratory data analysis of a corpus, written as a report before anything is trained.

  emojax explore --data fer2013 --out runs/explore/fer2013
  emojax explore --data ravdess --out runs/explore/ravdess [--root /data/RAVDESS]
  emojax explore --data goemotions --split train --out runs/explore/goemotions_train
  emojax explore --data clips --root /data/ckplus --out runs/explore/ckplus
  emojax explore --data labelled_text --root corpus.csv --text-column text --label-column emotion --out ...
  emojax explore --data ravdess --config configs/speech.py:labels=ekman7 --out runs/explore/ravdess_ekman7

Each run writes `report.html` (self-contained: figures embedded, opens offline), `report.md` (the same, linking
the PNGs beside it), the figures as PNG and `summary.json` (every number of the report) into `--out`.
The corpora are read by emojax's own readers (`corpora.py` names them),
configured by the training config of their modality (`configs/face_cnn.py`, `configs/speech.py`,
`configs/text.py`; `--config` picks another file or variant), so the report sees the data as training does.
One module per modality: `faces`, `speech`, `text`, `aligned`; `report` writes the files, `figures` draws.
"""

import argparse
import sys
import time
from pathlib import Path

import threadpoolctl

from emojax.explore.corpora import CORPORA, DESCRIPTIONS, UserError, data_config


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    prog="emojax explore",
    description="Exploratory data analysis of one corpus: report.html, report.md, PNG figures and summary.json.",
    epilog="corpora: " + "; ".join(f"{k} = {v}" for k, v in DESCRIPTIONS.items()),
  )
  parser.add_argument("--data", required=True, help=f"the corpus: one of {', '.join(CORPORA)}")
  parser.add_argument("--root", default="", help="the corpus folder (default: the config's, ../shared/data/...)")
  parser.add_argument(
    "--split",
    nargs="+",
    default=None,
    help="splits to read (default: train and validation; the aligned sets have train only)",
  )
  parser.add_argument("--out", required=True, help="the report folder (created)")
  parser.add_argument(
    "--config",
    default="",
    help="the training config to read the data as, file.py[:arg] "
    "(default: configs/face_cnn.py, speech.py or text.py by modality)",
  )
  parser.add_argument(
    "--sample",
    type=int,
    default=2000,
    help="rows per split the expensive parts look at (face detector, t-SNE, examples); "
    "the report says where it sampled (default 2000)",
  )
  parser.add_argument("--seed", type=int, default=0, help="seed of every sample drawn")
  parser.add_argument("--text-column", default="", help="labelled_text: the text column (header name or index)")
  parser.add_argument("--label-column", default="", help="labelled_text: the label column (header name or index)")
  parser.add_argument("--delimiter", default="", help="labelled_text: the field separator (default by suffix)")
  parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
  return parser.parse_args(argv)


def main(argv: list[str]) -> int:
  args = parse_args(argv)
  if args.data not in CORPORA:
    print(f"emojax explore: unknown --data {args.data!r}; choose one of {', '.join(CORPORA)}.", file=sys.stderr)
    return 2
  if args.sample < 10:
    print(f"emojax explore: --sample {args.sample} is too small; use at least 10 (default 2000).", file=sys.stderr)
    return 2
  try:
    columns = {
      k: v
      for k, v in (
        ("text_column", args.text_column),
        ("label_column", args.label_column),
        ("delimiter", args.delimiter),
      )
      if v
    }
    paths = explore(
      args.data,
      args.out,
      root=args.root,
      splits=args.split,
      config_spec=args.config,
      sample=args.sample,
      seed=args.seed,
      quiet=args.quiet,
      **columns,
    )
  except UserError as error:
    print(f"emojax explore: {error}", file=sys.stderr)
    return 2
  print(f"wrote {len(paths)} files to {args.out}: {paths[1]}")
  return 0


def explore(
  name: str,
  out: str | Path,
  root: str = "",
  splits=None,
  config_spec: str = "",
  sample: int = 2000,
  seed: int = 0,
  quiet: bool = False,
  **data_fields,
) -> list[Path]:
  """Writes the report of corpus `name` into `out`; returns the files written (report.md, report.html,
  summary.json, then the figures). `data_fields` set `config.data` fields (labelled_text: text_column,
  label_column, delimiter). Raises `UserError` for what the user can fix."""
  from emojax.explore.report import Progress, Report

  if name not in CORPORA:
    raise UserError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}.")
  modality = CORPORA[name][0]
  progress = Progress(name, quiet=quiet)
  started = time.monotonic()
  config = data_config(name, config_spec)
  if config is not None and root:
    config.root = str(Path(root).expanduser())
  if name == "labelled_text":
    if not root or not {"text_column", "label_column"} <= set(data_fields):
      raise UserError(
        "labelled_text needs --root (a CSV/TSV file or a folder of <split>.csv|.tsv), --text-column and --label-column."
      )
    if Path(config.root).is_file() and not splits:
      splits = ["all"]  # one file holds the whole corpus
  for key, value in data_fields.items():
    config[key] = value
  report = Report(f"Exploratory data analysis: {DESCRIPTIONS[name]}", out, progress)
  report.summary.update(corpus=name, modality=modality, seed=seed, sample=sample)
  # One BLAS/OpenMP thread: t-SNE and the probes oversubscribe a small shared machine (10x slower on 2 busy
  # cores); the speech analysis runs its own two worker threads. sklearn is loaded first so the limit reaches
  # its OpenMP runtime too.
  import sklearn.linear_model  # noqa: F401
  import sklearn.manifold  # noqa: F401

  with threadpoolctl.threadpool_limits(limits=1):
    _analyze(name, modality, report, config, root, splits, sample, seed, progress)
  report.summary["seconds"] = round(time.monotonic() - started, 1)
  paths = report.write()
  progress.say(f"wrote {out} ({len(paths)} files) in {report.summary['seconds']:.0f}s")
  return paths


def _analyze(name, modality, report, config, root, splits, sample, seed, progress) -> None:
  if modality == "aligned":
    from emojax.explore import aligned

    if splits and list(splits) != ["train"]:
      raise UserError(
        f"--split {' '.join(splits)}: {name} here is its train part only (the test part is held "
        "back); leave --split out."
      )
    try:
      with progress.step(f"reading {name}"):
        data = aligned.load(name, root)
    except (FileNotFoundError, ValueError) as error:
      raise UserError(str(error)) from error
    aligned.analyze(report, data, sample=sample, seed=seed)
  else:
    splits = splits or ["train", "validation"]
    report.summary.update(root=str(config.get("root", "")), splits=list(splits))
    if modality == "speech":
      from emojax.explore import speech

      try:
        with progress.step(f"listing {name} files"):
          corpus = speech.load(config, splits)
      except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from error
      speech.analyze(report, corpus, config, sample=sample, seed=seed)
    else:
      datasets = _read_splits(config, splits, progress)
      if modality == "faces":
        from emojax.explore import faces

        faces.analyze(report, datasets, sample=sample, seed=seed)
      else:
        from emojax.explore import text

        text.analyze(report, datasets, config, sample=sample, seed=seed)


def _read_splits(config, splits, progress) -> dict:
  """Each split through the reader training uses (`emojax.data.read_split`); text without tokenizing."""
  from emojax.data import read_split

  datasets = {}
  for split in splits:
    try:
      with progress.step(f"reading {split}"):
        if config.name == "goemotions":
          from emojax.data import goemotions  # raw rows; the text analysis tokenizes itself, untruncated

          datasets[split] = goemotions.load(config.root, split, "goemotions28")
        else:
          datasets[split] = read_split(config, split)
    except (FileNotFoundError, ValueError) as error:
      raise UserError(str(error)) from error
  return datasets
