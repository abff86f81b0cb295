"""RAVDESS audio-visual: the facial action units of each speech recording's video beside its audio.

  <data>/ravdess_av/openface_action_units.csv   column `file`: the recording's stem, then 35 OpenFace 2.0 columns,
                                                the clip means of 17 action-unit intensities (AUxx_r_mean, 0-5) and
                                                18 presences (AUxx_c_mean, the fraction of frames)
  <data>/ravdess/Actor_NN/03-01-EE-II-SS-RR-AA.flac   the audio of the same recordings (`emojax.data.speech`)

A recording is named by the fields after the modality (vocal channel, emotion, intensity, statement, repetition,
actor), so a row named after the video (`01-01-...`) and the audio file (`03-01-...`) meet; examples are
identified by the audio-only stem, as the speech reader and its runs' exports name them. Labels come from the
name: RAVDESS's 8 classes (`config.data.labels="native"`) or Ekman-7 (calm merged into neutral, or dropped with
`calm="drop"`). The split is by actor, as for speech: actors 17-20 (fold 4 of 5) are validation by default;
`speakers` reads only some actors (the training actors alone, with some of them held out, to choose settings).

`load` joins the two modalities by recording (`aligned.join`): a recording without a usable audio file, or
without a row of action units, is counted and kept with the modality it has. Speech enters as the outputs of a
trained speech run (`config.data.exports.speech`, matched by stem) or as the frames of its own reader
(`config.data.speech`: the speech run's data config, so the features are those its Conformer was trained on).
`load_modality` gives the face alone (`config.data.name = "ravdess_av"`), for a single-modality baseline.
"""

import csv
import functools
import math
from pathlib import Path

import ml_collections
import numpy as np

from emojax import labels as labels_lib
from emojax.data import aligned
from emojax.data.base import Dataset

ACTION_UNITS_FILE = "openface_action_units.csv"
MODALITIES = ("face", "speech")


def recording(stem: str) -> tuple[str, str, str]:
  """A stem of either modality -> (the audio-only stem that names the example, actor, native class).
  '01-01-05-02-01-01-12' (video) and '03-01-05-02-01-01-12' (audio) -> ('03-01-05-02-01-01-12', '12', 'angry')."""
  from emojax.data.speech import ravdess_emotion_from_filename

  parts = Path(stem).stem.split("-")
  if len(parts) != 7 or parts[0] not in ("01", "02", "03"):
    raise ValueError(f"expected a RAVDESS stem MM-VV-EE-II-SS-RR-AA with modality 01, 02 or 03, got {stem!r}")
  audio_stem = "-".join(["03"] + parts[1:])
  actor, native = ravdess_emotion_from_filename(audio_stem)  # checks every other field, naming the wrong one
  return audio_stem, actor, native


@functools.cache
def read_action_units(path: str) -> tuple[tuple[str, ...], np.ndarray, tuple[str, ...], tuple[str, ...]]:
  """(audio-only stems, features [N, 35] float32, column names, skipped-row descriptions) of the action-unit file.
  A row with a bad name, a wrong column count, a value that is not a finite number, or a second row for the same
  recording is skipped and named."""
  file = Path(path)
  if not file.is_file():
    raise FileNotFoundError(
      f"No {file}: config.data.root should be the ravdess_av folder holding {ACTION_UNITS_FILE} "
      "(../shared/data/ravdess_av)."
    )
  with open(file, newline="") as f:
    rows = list(csv.reader(f))
  if not rows or not rows[0] or rows[0][0] != "file":
    raise ValueError(
      f"{file}: the header should start with `file` (the recording's stem) followed by the action-unit "
      f"columns; got {rows[0][:3] if rows else 'an empty file'}."
    )
  header = tuple(rows[0][1:])
  stems, features, skipped, seen = [], [], [], set()
  for line, row in enumerate(rows[1:], 2):
    where = f"{file.name}:{line}"
    if len(row) != len(header) + 1:
      skipped.append(f"{where}: {len(row)} columns, expected {len(header) + 1}")
      continue
    try:
      stem = recording(row[0])[0]
      values = [float(v) for v in row[1:]]
    except ValueError as error:
      skipped.append(f"{where}: {error}")
      continue
    if not all(math.isfinite(v) for v in values):
      skipped.append(f"{where}: a value is missing or not finite")
      continue
    if stem in seen:
      skipped.append(f"{where}: a second row for recording {stem}")
      continue
    seen.add(stem)
    stems.append(stem)
    features.append(values)
  if not stems:
    raise ValueError(f"{file}: no usable rows ({len(skipped)} skipped: {skipped[:3]}).")
  return tuple(stems), np.array(features, np.float32), header, tuple(skipped)


def class_names(config) -> tuple[str, ...]:
  if config.labels == "native":
    return labels_lib.RAVDESS_CLASSES
  if config.labels == "ekman7":
    return labels_lib.EKMAN7
  raise ValueError(f"config.data.labels={config.labels!r}; expected 'native' (RAVDESS's 8 classes) or 'ekman7'.")


def label_of(native: str, config) -> int | None:
  """The class id of a RAVDESS class in the configured label space; None when dropped (calm under calm="drop")."""
  if config.labels == "native":
    return labels_lib.RAVDESS_CLASSES.index(native)
  target = labels_lib.speech_to_ekman7(native, config.calm)
  return None if target is None else labels_lib.EKMAN7.index(target)


def actors_read(config, actors) -> np.ndarray:
  """Boolean [N]: rows of the actors `config.data.speakers` names (all when it is empty), e.g. the training actors
  alone, to choose settings on some of them without reading the validation actors."""
  wanted = {str(a).zfill(2) for a in config.get("speakers", ())}
  return np.isin(np.asarray(actors), sorted(wanted)) if wanted else np.ones(len(actors), bool)


def validation_actors(config) -> set[str]:
  """The held-out actors: `validation_speakers`, else fold `fold` of `num_folds` over the actors read."""
  from emojax.data.speech import validation_speakers

  stems = read_action_units(str(Path(config.root).expanduser() / ACTION_UNITS_FILE))[0]
  actors = np.array([recording(s)[1] for s in stems])
  return validation_speakers(sorted(set(actors[actors_read(config, actors)])), config)


def load_modality(config, split: str) -> Dataset:
  """The face alone: action units, labels, actors and ids of one split (`config.data.name = "ravdess_av"`)."""
  if config.get("modality", "face") != "face":
    raise ValueError(
      f"config.data.modality={config.modality!r}: ravdess_av alone is the face (action units); "
      "train speech alone with configs/speech.py."
    )
  return face(config, split)


def face(config, split: str) -> Dataset:
  path = str(Path(config.root).expanduser() / ACTION_UNITS_FILE)
  stems, features, columns, skipped = read_action_units(path)
  actors = np.array([recording(s)[1] for s in stems])
  label = np.array([label_of(recording(s)[2], config) for s in stems], dtype=object)
  labelled = np.array([v is not None for v in label]) & actors_read(config, actors)
  held_out = validation_actors(config)
  statistics = aligned.vector_statistics(
    features[aligned.split_rows(actors, "train", held_out, "ravdess_av", "actor") & labelled]
  )
  keep = aligned.split_rows(actors, split, held_out, "ravdess_av", "actor") & labelled
  return Dataset(
    {
      "features": features[keep],
      "label": label[keep].astype(np.int32),
      "speaker": actors[keep],
      "id": np.array(stems)[keep],
    },
    class_names=class_names(config),
    skipped=list(skipped),
    model_inputs=("features", "label"),
    metadata={"model_kwargs": statistics, "feature_names": columns},
  )


def speech(config, split: str, held_out: set[str]) -> tuple[Dataset, list[str]]:
  """The speech modality of `split`: a run's export (`config.data.exports.speech`) or the speech reader's frames
  (`config.data.speech`, its split forced to the same actors). Rows whose label the set drops are left out."""
  run = config.exports.get("speech", "")
  if run:
    data = aligned.export_source(run, split, class_names(config), "speech")
    actors = np.array([recording(s)[1] for s in data.arrays["id"]])
    chosen = actors_read(config, actors)
    if not chosen.all():
      data = Dataset(
        {k: v[chosen] for k, v in data.arrays.items()}, class_names=data.class_names, model_inputs=data.model_inputs
      )
      actors = actors[chosen]
    in_validation = np.isin(actors, sorted(held_out))
    wrong = sorted(set(actors[in_validation if split == "train" else ~in_validation]))
    if wrong:
      raise ValueError(
        f"The speech run {run} exported actors {wrong} as {split}, but they are in the other split "
        f"here (validation actors {sorted(held_out)}): train it with the same actor split "
        "(configs/speech.py: --config.data.fold / validation_speakers)."
      )
    return data, []
  from emojax.data import speech as speech_lib

  speech_config = ml_collections.ConfigDict(config.speech.to_dict())
  speech_config.split_by, speech_config.speakers = "speaker", tuple(config.get("speakers", ()))
  speech_config.validation_speakers = tuple(sorted(held_out))
  speech_config.labels, speech_config.calm = config.labels, config.calm
  data = speech_lib.load(speech_config, split)
  return data, list(data.skipped)


def load(config, split: str) -> Dataset:
  """The fusion examples of one split (`config.data.name = "multimodal_ravdess_av"`)."""
  modalities = aligned.check_modalities(config.modalities, MODALITIES, "ravdess_av")
  held_out = validation_actors(config)
  sources, skipped, encoder_kwargs = {}, [], {}
  for m in modalities:
    if m == "face" and config.exports.get("face", ""):
      sources[m] = aligned.export_source(config.exports.face, split, class_names(config), "face")
    elif m == "face":
      data = face(config, split)
      sources[m], encoder_kwargs[m] = data, data.metadata["model_kwargs"]
      skipped += data.skipped
    else:
      sources[m], dropped = speech(config, split, held_out)
      skipped += dropped
  groups = {key: recording(key)[1] for m in sources for key in sources[m].arrays["id"]}
  return aligned.join(
    sources, class_names(config), split, "ravdess_av", groups, encoder_kwargs=encoder_kwargs, skipped=skipped
  )
