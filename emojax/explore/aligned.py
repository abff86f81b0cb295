"""Aligned multimodal sets: `ravdess_av` (facial action units + the same recordings' speech) and `cmu_mosi`
(text, audio and video features of the same utterances).

Per modality the basics (counts, class-mean feature profiles, missing and constant columns) and how well it
alone separates the classes: a linear probe cross-validated over speakers (RAVDESS) or videos (MOSI), so a
fusion result can be read against each modality's own. The two loaders here read the files as documented in
`../shared/data/README.md` through the data layer's readers (`data.ravdess_av`, `data.mosi`), so the report
describes exactly the rows fusion trains on.
"""

import dataclasses
from pathlib import Path

import numpy as np

from emojax import labels as labels_lib
from emojax.config_utils import data_dir
from emojax.explore import figures, probe
from emojax.explore.report import Report

MOSI_DESCRIPTIONS = {"text": "100-d utterance CNN", "audio": "openSMILE functionals", "video": "100-d 3D-CNN"}


@dataclasses.dataclass
class AlignedSet:
  name: str
  class_names: tuple
  labels: np.ndarray  # [N] class ids
  groups: np.ndarray  # [N] speaker or video: the probes' folds never share one
  group_kind: str
  modalities: dict  # name -> (features [N, D] float, column names, description)
  notes: list = dataclasses.field(default_factory=list)
  pending: dict = dataclasses.field(default_factory=dict)  # modalities computed in analyze (speech features)


def load(name: str, root: str = "") -> AlignedSet:
  if name == "ravdess_av":
    return load_ravdess_av(Path(root or data_dir("ravdess_av")).expanduser())
  if name == "cmu_mosi":
    return load_cmu_mosi(Path(root or data_dir("cmu_mosi")).expanduser())
  raise ValueError(f"{name!r} is not an aligned set; expected 'ravdess_av' or 'cmu_mosi'.")


def load_ravdess_av(root: Path) -> AlignedSet:
  """OpenFace action units per clip, read as the fusion reader reads them (`data.ravdess_av`); speech features
  from the same recordings' files under `root/../ravdess`."""
  from emojax.data import ravdess_av

  stems, features, header, skipped = ravdess_av.read_action_units(str(root / ravdess_av.ACTION_UNITS_FILE))
  recordings = [ravdess_av.recording(stem) for stem in stems]
  labels = np.array([labels_lib.RAVDESS_CLASSES.index(native) for _, _, native in recordings])
  speakers = np.array([actor for _, actor, _ in recordings])
  notes = [f"{len(skipped)} rows skipped by the reader, e.g. {skipped[0]}"] if skipped else []
  data = AlignedSet(
    "ravdess_av",
    labels_lib.RAVDESS_CLASSES,
    labels,
    speakers,
    "speaker",
    {
      "face (action units)": (
        features.astype(np.float64),
        list(header),
        "OpenFace 2.0 AU intensities and presences, clip means",
      )
    },
    notes,
  )
  audio_root = root.parent / "ravdess"
  paths = {p.stem: p for p in audio_root.glob("Actor_*/*.*")} if audio_root.is_dir() else {}
  matched = [paths.get(stem) for stem in stems]
  data.pending["speech (MFCC + prosody)"] = matched
  missing = sum(p is None for p in matched)
  if missing:
    notes.append(f"{missing} of {len(stems)} clips have no audio file under {audio_root}")
  return data


def load_cmu_mosi(root: Path) -> AlignedSet:
  """The utterances the fusion reader joins (`data.mosi.read`) that have all three feature vectors, with the
  video of each."""
  from emojax.data import mosi

  utterances = mosi.read(str(root))
  keep = np.all([utterances.has[m] for m in mosi.VECTOR_MODALITIES], axis=0)
  modalities = {
    f"{m} ({MOSI_DESCRIPTIONS[m]})": (
      utterances.features[m][keep].astype(np.float64),
      [f"{m}_{i}" for i in range(utterances.features[m].shape[1])],
      MOSI_DESCRIPTIONS[m],
    )
    for m in mosi.VECTOR_MODALITIES
  }
  skipped = utterances.skipped
  notes = [f"{len(skipped)} rows skipped by the reader, e.g. {skipped[0]}"] if skipped else []
  return AlignedSet(
    "cmu_mosi",
    mosi.CLASS_NAMES,
    utterances.labels[keep].astype(int),
    utterances.videos[keep],
    "video",
    modalities,
    notes,
  )


def analyze(report: Report, data: AlignedSet, sample: int, seed: int = 0) -> None:
  progress = report.progress
  if data.pending:
    from emojax.explore import speech
    from emojax.explore.corpora import data_config

    config = data_config("ravdess")
    for modality, paths in data.pending.items():
      with progress.step(f"{modality} of {sum(p is not None for p in paths)} files"):
        present = [i for i, p in enumerate(paths) if p is not None]
        results = speech.measure_all([{"path": paths[i]} for i in present], config, progress)
        vectors = np.full((len(paths), len(speech.clip_names(config))), np.nan)
        for i, result in zip(present, results):
          if "vector" in result:
            vectors[i] = result["vector"]
        data.modalities[modality] = (
          vectors,
          speech.clip_names(config),
          "per-clip MFCC means and spreads, pitch, voicing, energy, zero crossings (the speech report's features)",
        )
  report.section("Overview")
  counts = np.bincount(data.labels, minlength=len(data.class_names))
  report.text(
    f"{len(data.labels):,} aligned rows from {len(set(data.groups.tolist()))} {data.group_kind}s; "
    + ", ".join(f"{n} {c:,}" for n, c in zip(data.class_names, counts))
    + ". Modalities: "
    + "; ".join(f"{m}: {v[0].shape[1]} features" for m, v in data.modalities.items())
    + "."
  )
  for note in data.notes[:10]:
    report.text(f"Note: {note}.")
  report.figure(
    figures.grouped_bars({"rows": counts}, list(data.class_names), "Rows per class"), "class_counts", "Rows per class."
  )
  report.summary.update(
    rows=len(data.labels),
    class_counts=dict(zip(data.class_names, counts.tolist())),
    groups=len(set(data.groups.tolist())),
    group_kind=data.group_kind,
    notes=data.notes,
  )
  probes, quality_rows, usable = {}, [], {}
  for number, (modality, (features, columns, description)) in enumerate(data.modalities.items()):
    report.section(f"Modality: {modality}")
    missing_rows = np.isnan(features).any(1)
    missing_columns = [columns[j] for j in np.flatnonzero(np.isnan(features).any(0))]
    finite = features[~missing_rows]
    spread = finite.std(0) if len(finite) else np.zeros(features.shape[1])
    constant = [columns[j] for j in np.flatnonzero(spread == 0)]
    quality_rows.append([modality, features.shape[1], int(missing_rows.sum()), len(missing_columns), len(constant)])
    report.text(
      f"{description}. {features.shape[1]} columns; rows with a missing value: {int(missing_rows.sum())}; "
      f"columns with missing values: {len(missing_columns)}; constant columns: {len(constant)}"
      + (f" ({', '.join(constant[:10])})" if constant else "")
      + "."
    )
    varying = spread > 0
    z = (finite[:, varying] - finite[:, varying].mean(0)) / spread[varying]
    names = [c for c, v in zip(columns, varying) if v]
    means = np.stack(
      [
        z[data.labels[~missing_rows] == c].mean(0) if (data.labels[~missing_rows] == c).any() else np.zeros(z.shape[1])
        for c in range(len(data.class_names))
      ]
    )
    shown = np.argsort(-np.abs(means).max(0))[:60]
    report.figure(
      figures.heatmap(
        means[:, shown],
        list(data.class_names),
        [names[j] for j in shown],
        f"class means (z-scores), {modality}",
        annotate=False,
        cmap="coolwarm",
        size=(min(14, 0.2 * len(shown) + 3), 0.35 * len(data.class_names) + 2),
      ),
      f"class_means_{number}",
      f"{modality}: each class's mean of each standardised feature (the "
      f"{len(shown)} features whose class means differ most).",
    )
    with progress.step(f"probe {modality}"):
      probes[modality] = probe.cross_validate(finite, data.labels[~missing_rows], data.groups[~missing_rows], seed)
    usable[modality] = ~missing_rows
    report.summary.setdefault("modalities", {})[modality] = {
      "columns": features.shape[1],
      "rows_with_missing": int(missing_rows.sum()),
      "columns_with_missing": missing_columns,
      "constant_columns": constant,
      "probe": probes[modality],
    }
  if len(data.modalities) > 1:
    rows = np.logical_and.reduce(list(usable.values()))
    joined = np.concatenate([v[0][rows] for v in data.modalities.values()], axis=1)
    joined = joined[:, joined.std(0) > 0]
    with progress.step("probe of all modalities concatenated"):
      probes["all concatenated"] = probe.cross_validate(joined, data.labels[rows], data.groups[rows], seed)
  report.section("How well each modality alone separates the classes")
  report.table(
    ["modality", "columns", "rows with missing values", "columns with missing values", "constant columns"], quality_rows
  )
  report.table(
    ["features", "accuracy", "balanced accuracy", "macro F1", "chance (majority)", "folds"],
    [[k, v["accuracy"], v["balanced_accuracy"], v["macro_f1"], v["chance"], v["folds"]] for k, v in probes.items()],
    f"Standardised features -> logistic regression, {probe.FOLDS}-fold cross-validation grouped by "
    f"{data.group_kind} (no {data.group_kind} in two folds), pooled out-of-fold predictions. 'all "
    "concatenated' is the simplest early fusion: a fusion model should beat it.",
  )
  report.summary["probes"] = probes
