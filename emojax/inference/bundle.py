"""Model bundles: a trained model in one self-contained folder, and the one restore path inference uses.

    emojax export-model --workdir runs/fer_resattn --out bundles/fer_resattn

A bundle holds what predicting needs and nothing of training: the run's config (data paths blanked, Hugging Face
folders replaced by copies of their config.json and tokenizer files under `encoders/`), the parameters and
batch-norm statistics (`variables.safetensors`; no optimizer state), the label space with its Ekman-7 map, the
multi-label thresholds tuned on the validation split, the validation report, the emojax version and commit,
and a format version. `bundle.json` lists every other file with its size and SHA-256, so a damaged or
incomplete copy is refused by name. It loads on a machine with neither the training data nor the Hugging Face
folders: text and wav2vec 2.0 models are rebuilt from the bundled config.json, their weights come from the
bundle.

`load_run(workdir)` builds the same `TrainedModel` from a training workdir (its config.json and best or latest
checkpoint, through `checkpoint.restore_variables`); `load(path)` takes either. Writing a bundle is
`export.export_bundle`.
"""

import dataclasses
import importlib.metadata
import json
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import traverse_util

from emojax import checkpoint
from emojax import data as data_lib
from emojax import labels as labels_lib
from emojax.inference import inputs as inputs_lib
from emojax.pretrained import sha256_of

FORMAT = "emojax-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"
WEIGHTS = "variables.safetensors"
VALIDATION_REPORT = "validation_report.json"
BUNDLED = "bundle:"  # a config value naming a folder inside the bundle
# Config fields naming a Hugging Face folder (architecture and tokenizer are bundled, weights are not).
PRETRAINED_FIELDS = ("pretrained", "wav2vec2_path", "tokenizer")
# Config fields naming data or caches of the training machine: blanked in a bundle.
MACHINE_FIELDS = ("root", "cache_dir", "landmark_cache", "tfds_dir", "goemotions_root", "compilation_cache_dir")
# What a Hugging Face folder contributes to a bundle: the architecture and the tokenizer, never the weights.
ENCODER_FILES = (
  "config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "vocab.txt",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
  "spm.model",
  "sentencepiece.bpe.model",
  "preprocessor_config.json",
)


class BundleError(ValueError):
  """A bundle that cannot be loaded: not a bundle, another format version, damaged, or not matching its model."""


@dataclasses.dataclass
class TrainedModel:
  """A model ready to predict with: its run config, Flax module, variables, label space and inputs.

  `thresholds` [C] are the per-label decision thresholds of a multi-label model, tuned on the validation split;
  `validation` the validation report of these variables (None when unknown); `source` says where it came from.
  """

  config: ml_collections.ConfigDict
  model: object
  variables: dict
  label_space: labels_lib.LabelSpace
  spec: inputs_lib.InputSpec
  thresholds: np.ndarray | None
  validation: dict | None
  source: dict


# ----------------------------------------------------------------------------------------------
# Restoring a training workdir.
# ----------------------------------------------------------------------------------------------
def load_run(workdir: str | Path, which: str = "best") -> TrainedModel:
  """The model of a training workdir: built from its config.json, its variables from the best (or latest)
  checkpoint. Needs the run's Hugging Face folders (text, wav2vec 2.0) where they were, and for GoEmotions the
  label files of its data root; never the examples or the optimizer state."""
  workdir = Path(workdir)
  config = checkpoint.load_run_config(workdir)
  space = data_lib.label_space_of(config.data)
  variables, step = checkpoint.restore_variables(workdir, which)
  report = _matching_report(workdir, config, step)
  return _assemble(
    config,
    space,
    variables,
    model_kwargs_of(config),
    report,
    {"kind": "workdir", "path": str(workdir), "checkpoint": which, "step": step},
  )


def model_kwargs_of(config: ml_collections.ConfigDict) -> dict:
  """What a dataset tells its model beside the config (`Dataset.metadata["model_kwargs"]`), from label files only:
  end-to-end fusion's label map of each encoder."""
  if config.model.name != "fusion.end_to_end":
    return {}
  from emojax.data import multimodal

  if config.data.name == "multimodal_synthetic_inputs":
    return {"label_maps": {m: None for m in config.model.encoders}}
  maps = {}
  for modality, data_config in config.data.modalities.items():
    space = data_lib.label_space_of(data_config)
    maps[modality] = multimodal.label_map(space.class_names, space.multi_label, space.ekman_matrix)
  return {"label_maps": maps}


def _matching_report(workdir: Path, config, step: int) -> dict | None:
  """The validation report of checkpoint `step`: training's `eval/report.json` or an `--mode=eval` report."""
  split = config.data.eval_split
  for path in [workdir / "eval" / "report.json", *sorted(workdir.glob(f"eval_*_{split}/report.json"))]:
    if not path.is_file():
      continue
    report = json.loads(path.read_text())
    if report.get("checkpoint_step") == step and report.get("split", split) == split:
      return report
  return None


def _assemble(config, space, variables, model_kwargs, report, source) -> TrainedModel:
  from emojax.models import get_model

  model = get_model(config.model, len(space.class_names), **model_kwargs)
  spec = inputs_lib.input_spec(config.data)
  check_variables(model, spec, variables, source.get("path", ""))
  thresholds = None if report is None else tuned_thresholds(space, report)
  return TrainedModel(config, model, variables, space, spec, thresholds, report, source)


def tuned_thresholds(space: labels_lib.LabelSpace, report: dict) -> np.ndarray | None:
  """A multi-label model's per-label thresholds [C] tuned on the validation split (the evaluator's), or None."""
  if not space.multi_label or "thresholds" not in report.get("all", {}):
    return None
  return np.asarray([report["all"]["thresholds"][name] for name in space.class_names], np.float32)


def check_variables(model, spec: inputs_lib.InputSpec, variables: dict, where: str = "") -> None:
  """Fails unless `variables` have exactly the names and shapes the model builds (a damaged bundle, or a run whose
  model code or config changed since it was trained), naming the first differences."""
  example = {k: v[None] for k, v in spec.example.items()}
  abstract = jax.eval_shape(
    lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, example, train=False)
  )
  expected = {
    path: tuple(leaf.shape)
    for path, leaf in flatten(abstract).items()
    if path.split("/")[0] in ("params", "batch_stats")
  }
  found = {path: tuple(np.shape(leaf)) for path, leaf in flatten(variables).items()}
  missing = sorted(set(expected) - set(found))
  unexpected = sorted(set(found) - set(expected))
  reshaped = sorted(p for p in set(expected) & set(found) if expected[p] != found[p])
  if missing or unexpected or reshaped:
    details = "; ".join(
      part
      for part in (
        f"missing {missing[:3]}" if missing else "",
        f"unexpected {unexpected[:3]}" if unexpected else "",
        f"shapes differ at {[(p, found[p], expected[p]) for p in reshaped[:3]]}" if reshaped else "",
      )
      if part
    )
    raise BundleError(
      f"The variables of {where or 'this model'} do not fit the model its config builds ({details}). "
      "The model code or config changed since it was trained, or the weights are damaged: export "
      "the bundle again from its training workdir."
    )


# ----------------------------------------------------------------------------------------------
# Load.
# ----------------------------------------------------------------------------------------------
def load(path: str | Path, which: str = "best") -> TrainedModel:
  """A bundle (a folder with bundle.json) or a training workdir (with config.json and checkpoints)."""
  path = Path(path).expanduser()
  if (path / MANIFEST).is_file():
    return load_bundle(path)
  if (path / "config.json").is_file():
    return load_run(path, which)
  if not path.is_dir():
    raise BundleError(
      f"No model at {path}: give a bundle folder (written by `emojax export-model`) or a training workdir."
    )
  raise BundleError(
    f"{path} is neither a bundle (no {MANIFEST}) nor a training workdir (no config.json); "
    "`emojax export-model --workdir <run> --out <bundle>` writes a bundle."
  )


def read_manifest(path: str | Path) -> dict:
  """bundle.json of a bundle, checked for format and version."""
  path = Path(path)
  try:
    manifest = json.loads((path / MANIFEST).read_text())
  except FileNotFoundError:
    raise BundleError(f"{path} is not a bundle: no {MANIFEST} (`emojax export-model` writes bundles).") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise BundleError(f"Damaged bundle {path}: {MANIFEST} is not valid JSON ({error}); export it again.") from None
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise BundleError(
      f"{path / MANIFEST} is not an emojax bundle manifest (format "
      f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {FORMAT!r})."
    )
  version = manifest.get("format_version")
  if version != FORMAT_VERSION:
    advice = (
      "upgrade emojax to read it"
      if isinstance(version, int) and version > FORMAT_VERSION
      else "export it again from its training workdir with this emojax"
    )
    raise BundleError(
      f"Bundle {path} has format version {version}; this emojax ({emojax_version()}) reads version "
      f"{FORMAT_VERSION}: {advice}."
    )
  return manifest


def verify_files(path: Path, manifest: dict) -> None:
  """Every file the manifest lists is present with its size and SHA-256; names the first that is not."""
  for name, expected in manifest.get("files", {}).items():
    file = path / name
    if not file.is_file():
      raise BundleError(f"Damaged bundle {path}: {name} is missing; copy the whole folder again or re-export it.")
    if file.stat().st_size != expected["bytes"] or sha256_of(file) != expected["sha256"]:
      raise BundleError(
        f"Damaged bundle {path}: {name} differs from what was exported ({file.stat().st_size} bytes, "
        f"expected {expected['bytes']}, or another checksum); copy it again or re-export the bundle."
      )
  if WEIGHTS not in manifest.get("files", {}):
    raise BundleError(f"Damaged bundle {path}: the manifest lists no {WEIGHTS}.")


def load_bundle(path: str | Path, verify: bool = True) -> TrainedModel:
  """A bundle's model: needs only the bundle folder (and emojax)."""
  path = Path(path).expanduser().resolve()
  manifest = read_manifest(path)
  if verify:
    verify_files(path, manifest)
  config = ml_collections.ConfigDict(checkpoint.as_tuples(_resolve_bundled(manifest["config"], path)))
  space = labels_lib.LabelSpace.from_dict(manifest["labels"])
  variables = load_variables(path / WEIGHTS)
  trained = _assemble(
    config,
    space,
    variables,
    checkpoint.as_tuples(manifest.get("model_kwargs", {})),
    None,
    {"kind": "bundle", "path": str(path), "step": manifest["source"].get("step")},
  )
  report_path = path / VALIDATION_REPORT
  report = json.loads(report_path.read_text()) if report_path.is_file() else None
  thresholds = manifest.get("thresholds")
  return dataclasses.replace(
    trained,
    validation=report,
    thresholds=None if thresholds is None else np.asarray(thresholds, np.float32),
    source={**trained.source, "manifest": manifest},
  )


def _resolve_bundled(value, root: Path):
  if isinstance(value, dict):
    return {k: _resolve_bundled(v, root) for k, v in value.items()}
  if isinstance(value, list):
    return [_resolve_bundled(v, root) for v in value]
  if isinstance(value, str) and value.startswith(BUNDLED):
    folder = root / value[len(BUNDLED) :]
    if not folder.is_dir():
      raise BundleError(f"Damaged bundle {root}: the folder {value[len(BUNDLED) :]} its config names is missing.")
    return str(folder)
  return value


# ----------------------------------------------------------------------------------------------
# Files.
# ----------------------------------------------------------------------------------------------
def flatten(tree) -> dict[str, np.ndarray]:
  """{"params": {"Dense_0": {"kernel": x}}} -> {"params/Dense_0/kernel": x}: the bundle's safetensors keys."""
  return traverse_util.flatten_dict(tree, sep="/")


def save_variables(variables: dict, path: Path) -> None:
  from safetensors.numpy import save_file

  flat = {name: np.ascontiguousarray(np.asarray(value)) for name, value in flatten(variables).items()}
  save_file(flat, str(path), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
  path.chmod(0o644)  # safetensors writes owner-only files; a bundle is meant to be shared


def load_variables(path: Path) -> dict:
  from safetensors import SafetensorError
  from safetensors.numpy import load_file

  try:
    variables = traverse_util.unflatten_dict(load_file(str(path)), sep="/")
  except (SafetensorError, OSError, ValueError) as error:
    raise BundleError(f"Damaged bundle: {path.name} cannot be read ({error}); re-export the bundle.") from error
  return {"params": variables.get("params", {}), "batch_stats": variables.get("batch_stats", {})}


def bundle_size(path: str | Path) -> int:
  return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def human_size(num_bytes: int) -> str:
  for unit in ("B", "KiB", "MiB", "GiB"):
    if num_bytes < 1024 or unit == "GiB":
      return f"{num_bytes:.1f} {unit}" if unit != "B" else f"{num_bytes} B"
    num_bytes /= 1024
  return ""


def emojax_version() -> str:
  try:
    return importlib.metadata.version("emojax")
  except importlib.metadata.PackageNotFoundError:
    return "unknown"
