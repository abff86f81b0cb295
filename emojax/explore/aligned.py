"""Aligned multimodal sets: `ravdess_av` (facial action units + the same recordings' speech) and `cmu_mosi`
(text, audio and video features of the same utterances).

Per modality the basics (counts, class-mean feature profiles, missing and constant columns) and how well it
alone separates the classes: a linear probe cross-validated over speakers (RAVDESS) or videos (MOSI), so a
fusion result can be read against each modality's own. The two loaders here read the files as documented in
`../shared/data/README.md` and stay small on purpose: they stand in until the data layer has readers for these
sets (in the fusion format), which should then replace `load`.
"""

import csv
import dataclasses
from pathlib import Path

import numpy as np

from emojax.config_utils import data_dir
from emojax.data import labels as labels_lib
from emojax.data import speech as speech_lib
from emojax.explore import figures, probe
from emojax.explore.report import Report

AU_FILE = "openface_action_units.csv"
MOSI_FILES = {"text": "text/text_train0.csv", "audio": "audio/audio_train0.csv", "video": "video/video_train0.csv"}
MOSI_DESCRIPTIONS = {"text": "100-d utterance CNN", "audio": "openSMILE functionals", "video": "100-d 3D-CNN"}


@dataclasses.dataclass
class AlignedSet:
  name: str
  class_names: tuple
  labels: np.ndarray                     # [N] class ids
  groups: np.ndarray                     # [N] speaker or video: the probes' folds never share one
  group_kind: str
  modalities: dict                       # name -> (features [N, D] float, column names, description)
  notes: list = dataclasses.field(default_factory=list)
  pending: dict = dataclasses.field(default_factory=dict)  # modalities computed in analyze (speech features)


def load(name: str, root: str = "") -> AlignedSet:
  if name == "ravdess_av":
    return load_ravdess_av(Path(root or data_dir("ravdess_av")).expanduser())
  if name == "cmu_mosi":
    return load_cmu_mosi(Path(root or data_dir("cmu_mosi")).expanduser())
  raise ValueError(f"{name!r} is not an aligned set; expected 'ravdess_av' or 'cmu_mosi'.")


def _rows(path: Path) -> list[list[str]]:
  if not path.is_file():
    raise FileNotFoundError(f"{path} is missing; see ../shared/data/README.md for the layout of this set.")
  with open(path, newline="") as f:
    return list(csv.reader(f))


def _floats(rows: list[list[str]], path: Path) -> np.ndarray:
  try:
    return np.array([[float(v) if v.strip() else np.nan for v in row] for row in rows], np.float64)
  except ValueError as error:
    raise ValueError(f"{path}: a value is not a number ({error}).") from error


def load_ravdess_av(root: Path) -> AlignedSet:
  """OpenFace action units per clip (`file` = the audio file's stem); speech features from `root/../ravdess`."""
  path = root / AU_FILE
  rows = _rows(path)
  header, rows = rows[0], rows[1:]
  if not header or header[0] != "file":
    raise ValueError(f"{path}: the first column should be `file` (the RAVDESS stem), got {header[:1]}.")
  kept, labels, speakers, stems, notes = [], [], [], [], []
  for line, row in enumerate(rows, 2):
    try:
      speaker, emotion = speech_lib.ravdess_emotion_from_filename(row[0] + ".wav")
    except speech_lib.BadFileName as error:
      notes.append(f"{path.name}:{line}: {error}")
      continue
    kept.append(row[1:])
    labels.append(labels_lib.RAVDESS_CLASSES.index(emotion))
    speakers.append(speaker)
    stems.append(row[0])
  features = _floats(kept, path)
  data = AlignedSet("ravdess_av", labels_lib.RAVDESS_CLASSES, np.array(labels), np.array(speakers), "speaker",
                    {"face (action units)": (features, header[1:], "OpenFace 2.0 AU intensities and presences, "
                                             "clip means")}, notes)
  audio_root = root.parent / "ravdess"
  paths = {p.stem: p for p in audio_root.glob("Actor_*/*.*")} if audio_root.is_dir() else {}
  matched = [paths.get(stem) for stem in stems]
  data.pending["speech (MFCC + prosody)"] = matched
  missing = sum(p is None for p in matched)
  if missing:
    notes.append(f"{missing} of {len(stems)} clips have no audio file under {audio_root}")
  return data


def load_cmu_mosi(root: Path) -> AlignedSet:
  """The three row-aligned feature files (label in the last column) and the video of each row."""
  modalities, labels = {}, None
  for modality, file in MOSI_FILES.items():
    values = _floats(_rows(root / file), root / file)
    if labels is not None and not np.array_equal(values[:, -1], labels):
      raise ValueError(f"{root / file}: labels differ from {MOSI_FILES['text']}'s row for row; the files must be "
                       "row-aligned.")
    labels = values[:, -1]
    modalities[f"{modality} ({MOSI_DESCRIPTIONS[modality]})"] = (
        values[:, :-1], [f"{modality}_{i}" for i in range(values.shape[1] - 1)], MOSI_DESCRIPTIONS[modality])
  transcripts = _rows(root / "transcripts.csv")
  index_rows = _rows(root / "text_train.csv")
  if len(index_rows) != len(labels):
    raise ValueError(f"{root / 'text_train.csv'} has {len(index_rows)} rows, the feature files {len(labels)}.")
  videos = np.array([transcripts[int(row[0])][2] for row in index_rows])
  notes = []
  if not np.array_equal(np.array([int(transcripts[int(row[0])][3]) for row in index_rows]), labels.astype(int)):
    notes.append("labels in transcripts.csv differ from the feature files' for some rows")
  return AlignedSet("cmu_mosi", ("negative", "positive"), labels.astype(int), videos, "video", modalities, notes)


def analyze(report: Report, data: AlignedSet, sample: int, seed: int = 0) -> None:
  progress = report.progress
  if data.pending:
    from emojax.explore import data_config, speech
    config = data_config("ravdess")
    for modality, paths in data.pending.items():
      with progress.step(f"{modality} of {sum(p is not None for p in paths)} files"):
        present = [i for i, p in enumerate(paths) if p is not None]
        results = speech.measure_all([{"path": paths[i]} for i in present], config, progress)
        vectors = np.full((len(paths), len(speech.clip_names(config))), np.nan)
        for i, result in zip(present, results):
          if "vector" in result:
            vectors[i] = result["vector"]
        data.modalities[modality] = (vectors, speech.clip_names(config), "per-clip MFCC means and spreads, pitch, "
                                     "voicing, energy, zero crossings (the speech report's features)")
  report.section("Overview")
  counts = np.bincount(data.labels, minlength=len(data.class_names))
  report.text(f"{len(data.labels):,} aligned rows from {len(set(data.groups.tolist()))} {data.group_kind}s; "
              + ", ".join(f"{n} {c:,}" for n, c in zip(data.class_names, counts)) + ". Modalities: "
              + "; ".join(f"{m}: {v[0].shape[1]} features" for m, v in data.modalities.items()) + ".")
  for note in data.notes[:10]:
    report.text(f"Note: {note}.")
  report.figure(figures.grouped_bars({"rows": counts}, list(data.class_names), "Rows per class"), "class_counts",
                "Rows per class.")
  report.summary.update(rows=len(data.labels), class_counts=dict(zip(data.class_names, counts.tolist())),
                        groups=len(set(data.groups.tolist())), group_kind=data.group_kind, notes=data.notes)
  probes, quality_rows, usable = {}, [], {}
  for number, (modality, (features, columns, description)) in enumerate(data.modalities.items()):
    report.section(f"Modality: {modality}")
    missing_rows = np.isnan(features).any(1)
    missing_columns = [columns[j] for j in np.flatnonzero(np.isnan(features).any(0))]
    finite = features[~missing_rows]
    spread = finite.std(0) if len(finite) else np.zeros(features.shape[1])
    constant = [columns[j] for j in np.flatnonzero(spread == 0)]
    quality_rows.append([modality, features.shape[1], int(missing_rows.sum()), len(missing_columns), len(constant)])
    report.text(f"{description}. {features.shape[1]} columns; rows with a missing value: {int(missing_rows.sum())}; "
                f"columns with missing values: {len(missing_columns)}; constant columns: {len(constant)}"
                + (f" ({', '.join(constant[:10])})" if constant else "") + ".")
    varying = spread > 0
    z = (finite[:, varying] - finite[:, varying].mean(0)) / spread[varying]
    names = [c for c, v in zip(columns, varying) if v]
    means = np.stack([z[data.labels[~missing_rows] == c].mean(0) if (data.labels[~missing_rows] == c).any()
                      else np.zeros(z.shape[1]) for c in range(len(data.class_names))])
    shown = np.argsort(-np.abs(means).max(0))[:60]
    report.figure(figures.heatmap(means[:, shown], list(data.class_names), [names[j] for j in shown],
                                  f"class means (z-scores), {modality}", annotate=False, cmap="coolwarm",
                                  size=(min(14, 0.2 * len(shown) + 3), 0.35 * len(data.class_names) + 2)),
                  f"class_means_{number}", f"{modality}: each class's mean of each standardised feature (the "
                  f"{len(shown)} features whose class means differ most).")
    with progress.step(f"probe {modality}"):
      probes[modality] = probe.cross_validate(finite, data.labels[~missing_rows], data.groups[~missing_rows], seed)
    usable[modality] = ~missing_rows
    report.summary.setdefault("modalities", {})[modality] = {
        "columns": features.shape[1], "rows_with_missing": int(missing_rows.sum()),
        "columns_with_missing": missing_columns, "constant_columns": constant, "probe": probes[modality]}
  if len(data.modalities) > 1:
    rows = np.logical_and.reduce(list(usable.values()))
    joined = np.concatenate([v[0][rows] for v in data.modalities.values()], axis=1)
    joined = joined[:, joined.std(0) > 0]
    with progress.step("probe of all modalities concatenated"):
      probes["all concatenated"] = probe.cross_validate(joined, data.labels[rows], data.groups[rows], seed)
  report.section("How well each modality alone separates the classes")
  report.table(["modality", "columns", "rows with missing values", "columns with missing values", "constant columns"],
               quality_rows)
  report.table(["features", "accuracy", "balanced accuracy", "macro F1", "chance (majority)", "folds"],
               [[k, v["accuracy"], v["balanced_accuracy"], v["macro_f1"], v["chance"], v["folds"]]
                for k, v in probes.items()],
               f"Standardised features -> logistic regression, {probe.FOLDS}-fold cross-validation grouped by "
               f"{data.group_kind} (no {data.group_kind} in two folds), pooled out-of-fold predictions. 'all "
               "concatenated' is the simplest early fusion: a fusion model should beat it.")
  report.summary["probes"] = probes
