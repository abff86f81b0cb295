"""Writing model bundles (`emojax export-model`): a training workdir's model, its preprocessing files, thresholds
and validation report in one self-contained folder that `bundle.load_bundle` reads (the format is described
there)."""

import dataclasses
import datetime
import json
import logging
import shutil
import subprocess
from pathlib import Path

from emojax.inference import inputs as inputs_lib
from emojax.inference import scoring
from emojax.inference.bundle import (
  BUNDLED,
  ENCODER_FILES,
  FORMAT,
  FORMAT_VERSION,
  MACHINE_FIELDS,
  MANIFEST,
  PRETRAINED_FIELDS,
  VALIDATION_REPORT,
  WEIGHTS,
  TrainedModel,
  bundle_size,
  emojax_version,
  human_size,
  load_run,
  model_kwargs_of,
  save_variables,
  tuned_thresholds,
)
from emojax.metrics import HEADLINE
from emojax.pretrained import sha256_of


def export_bundle(workdir: str | Path, out: str | Path | None = None, which: str = "best") -> Path:
  """Writes the bundle of a training workdir's best (or latest) checkpoint to `out` (default `<workdir>/bundle`)
  and returns its path. The validation report comes from the run (`eval/report.json` or an `--mode=eval`
  report of the same checkpoint); a run without one is evaluated here, on its own validation split."""
  workdir = Path(workdir)
  trained = load_run(workdir, which)
  report = trained.validation
  if report is None:
    logging.info(
      "No validation report of step %d in %s: evaluating it on its own %s split.",
      trained.source["step"],
      workdir,
      trained.config.data.eval_split,
    )
    report = scoring.validation_report(trained)
    trained = dataclasses.replace(trained, validation=report, thresholds=tuned_thresholds(trained.label_space, report))
  out = Path(out) if out is not None else workdir / "bundle"
  partial = out.with_name(out.name + ".partial")
  shutil.rmtree(partial, ignore_errors=True)
  partial.mkdir(parents=True)
  config = trained.config.to_dict()
  folders = _bundle_encoders(config, partial)
  _blank_machine_fields(config)
  save_variables(trained.variables, partial / WEIGHTS)
  (partial / VALIDATION_REPORT).write_text(json.dumps(report, indent=2))
  manifest = {
    "format": FORMAT,
    "format_version": FORMAT_VERSION,
    "emojax_version": emojax_version(),
    "commit": _git_commit(),
    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "source": {
      **trained.source,
      "path": str(workdir.resolve()),
      "encoder_folders": folders,
      "data_root": trained.config.data.get("root", ""),
    },
    "model": trained.config.model.name,
    "modalities": list(trained.spec.modalities),
    "inputs": dict(trained.spec.kinds),
    "labels": trained.label_space.to_dict(),
    "thresholds": None if trained.thresholds is None else [float(t) for t in trained.thresholds],
    "validation": _headline(report, trained.config),
    "model_kwargs": model_kwargs_of(trained.config),
    "inference": inference_settings(trained),
    "config": config,
  }
  manifest["files"] = {
    str(p.relative_to(partial)): {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
    for p in sorted(partial.rglob("*"))
    if p.is_file()
  }
  (partial / MANIFEST).write_text(json.dumps(manifest, indent=2))
  shutil.rmtree(out, ignore_errors=True)
  partial.rename(out)
  logging.info(
    "Wrote bundle %s (%s) of %s, step %d.", out, human_size(bundle_size(out)), workdir, trained.source["step"]
  )
  return out


def inference_settings(trained: TrainedModel) -> dict:
  """What a Recognizer of the bundle compiles (batch sizes, each sequence axis's lengths) and how it windows long
  recordings."""
  settings = {
    "batch_sizes": list(inputs_lib.DEFAULT_BATCH_SIZES),
    "sequence_buckets": {",".join(axis.keys): list(axis.buckets) for axis in trained.spec.sequences},
  }
  audio = inputs_lib.audio_config(trained.config.data)
  return {**settings, **(inputs_lib.windowing(audio) if audio is not None else {})}


def _headline(report: dict, config) -> dict:
  """The validation figures a bundle carries in its manifest (the whole report is validation_report.json)."""
  figures = {k: report["all"][k] for k in (*HEADLINE, "loss") if k in report.get("all", {})}
  subsets = {
    name: {k: m[k] for k in ("accuracy", "macro_f1", "num_examples") if k in m}
    for name, m in report.items()
    if name != "all" and isinstance(m, dict) and "accuracy" in m
  }
  return {
    "dataset": config.data.name,
    "split": config.data.eval_split,
    "num_examples": report.get("all", {}).get("num_examples"),
    "checkpoint_step": report.get("checkpoint_step"),
    **figures,
    "subsets": subsets,
  }


def _bundle_encoders(config: dict, bundle_dir: Path) -> dict:
  """Copies the architecture and tokenizer files of every Hugging Face folder the config names into
  `encoders/<field path>/` and points the config there (`bundle:encoders/...`); one copy per distinct folder."""
  copies, named = {}, {}

  def visit(node: dict, path: tuple):
    for key, value in node.items():
      if isinstance(value, dict):
        visit(value, path + (key,))
      elif key in PRETRAINED_FIELDS and isinstance(value, str) and value:
        folder = str(Path(value).expanduser().resolve())
        if folder not in copies:
          source = Path(folder)
          if not (source / "config.json").is_file() and key != "tokenizer":
            raise FileNotFoundError(
              f"config.{'.'.join(path + (key,))}={value!r} has no config.json to bundle: "
              "export on the machine that trained the run, where the folder exists."
            )
          relative = "encoders/" + "_".join(path + (key,))
          (bundle_dir / relative).mkdir(parents=True)
          for name in ENCODER_FILES:
            if (source / name).is_file():
              shutil.copy2(source / name, bundle_dir / relative / name)
          copies[folder] = relative
        node[key] = BUNDLED + copies[folder]
        named[".".join(path + (key,))] = value

  # The model's fields first: a folder the model and the data both name is called after the model's field.
  visit({"model": config["model"]}, ())
  visit({k: v for k, v in config.items() if k != "model"}, ())
  return named


def _blank_machine_fields(config: dict) -> None:
  for key, value in config.items():
    if isinstance(value, dict):
      if key == "checkpoints":  # end-to-end fusion's encoder runs: their weights are in the bundle already
        config[key] = {m: "" for m in value}
      else:
        _blank_machine_fields(value)
    elif key in MACHINE_FIELDS:
      config[key] = ""


def _git_commit() -> dict:
  """The commit of the emojax checkout this runs from, and whether it had uncommitted changes (or unknown)."""
  repo = Path(__file__).resolve().parents[2]
  try:
    commit = subprocess.run(
      ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    dirty = subprocess.run(
      ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
      capture_output=True,
      text=True,
      timeout=10,
      check=True,
    ).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return {"commit": "unknown", "uncommitted_changes": None}
  return {"commit": commit, "uncommitted_changes": bool(dirty)}
