"""Speech: RAVDESS, TESS, CREMA-D, read as `emojax.data.speech` reads them.

Counts by emotion x speaker x intensity; per file duration, loudness (RMS dBFS), peak, clipped and silent
shares and an SNR estimate; for one speaker the waveform, log-mel and MFCC of each emotion; pitch and energy
per emotion; PCA and t-SNE of per-clip features coloured by emotion and by speaker, with how much of the
features' variance the speaker explains and what per-speaker standardisation does to a speaker-independent
emotion probe; and the files the reader would skip, with its reason.

File names are parsed by the reader's parsers, audio decoded by `audio.read_audio` and checked by
`audio.prepare_clip` (the reader's skip rules), features computed by `features.frame_features`: the report sees
exactly the clips and classes training sees. The split of each speaker is the reader's (`config.data` folds).
"""

import concurrent.futures
import dataclasses
from pathlib import Path

import ml_collections
import numpy as np

from emojax import labels as labels_lib
from emojax.data import audio as audio_lib
from emojax.data import features as features_lib
from emojax.data import speech as speech_lib
from emojax.explore import figures
from emojax.explore.report import Report

# Intensity is the 4th dash-separated part of a RAVDESS name and the 4th underscore-separated part of a CREMA-D
# name, once the reader's parser has accepted the name; TESS has none.
_INTENSITY = {
  "ravdess": ("-", 3, {"01": "normal", "02": "strong"}),
  "crema_d": ("_", 3, {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified", "X": "unspecified"}),
}
FRAME_LENGTH, HOP = 400, 160
LEVEL_FLOOR_DBFS = -100.0


@dataclasses.dataclass
class Corpus:
  name: str
  class_names: tuple
  files: list  # dicts: path, speaker, label (index into class_names), intensity, split
  skipped: list  # (path, reason) of names the reader rejects or classes the label mapping drops


def intensity_of(corpus: str, name: str) -> str:
  if corpus not in _INTENSITY:
    return "n/a"
  separator, index, names = _INTENSITY[corpus]
  return names.get(Path(name).stem.split(separator)[index], "?")


def load(config: ml_collections.ConfigDict, splits: list[str]) -> Corpus:
  """Every file of the requested splits, named and labelled by the reader's rules (no audio read yet)."""
  if config.name not in speech_lib.CORPORA:
    raise ValueError(f"{config.name!r} is not a speech corpus; expected one of {sorted(speech_lib.CORPORA)}.")
  root = Path(config.root).expanduser()
  parse = speech_lib.CORPORA[config.name][0]
  names = speech_lib.class_names(config)
  files, skipped = [], []
  for path in speech_lib.find_files(root, config.name):
    try:
      speaker, native = parse(path.name)
    except speech_lib.BadFileName as error:
      skipped.append((str(path), f"file name: {error}"))
      continue
    target = native if config.labels == "native" else labels_lib.speech_to_ekman7(native, config.calm)
    if target is None:
      skipped.append((str(path), f"class {native!r} dropped by config.data.calm={config.calm!r}"))
      continue
    if config.speakers and speaker not in config.speakers:
      continue
    files.append(
      {
        "path": path,
        "speaker": speaker,
        "label": names.index(target),
        "intensity": intensity_of(config.name, path.name),
      }
    )
  if not files:
    raise FileNotFoundError(
      f"No {config.name} files with valid names under {root}; first problems: {[r for _, r in skipped[:3]]}"
    )
  speakers = np.array([f["speaker"] for f in files])
  split_of = np.full(len(files), "", object)
  for split in ("train", "validation"):
    split_of[speech_lib._in_split(split, speakers, config)] = split  # the reader's own split rule
  unknown = sorted(set(splits) - {"train", "validation"})
  if unknown:
    raise ValueError(f"--split {unknown}: speech corpora have 'train' and 'validation' (held-out speakers).")
  files = [dict(f, split=s) for f, s in zip(files, split_of) if s in splits]
  return Corpus(config.name, names, files, skipped)


def feature_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The training features' settings with MFCCs and prosody (pitch, voicing, energy, zero crossings)."""
  features = ml_collections.ConfigDict(config.features.to_dict())
  features.kind, features.deltas, features.prosody, features.normalize = "mfcc", False, True, "none"
  features.pitch_method = "yin"
  return features


def clip_vector(clip: np.ndarray, sample_rate: int, features: ml_collections.ConfigDict) -> tuple[np.ndarray, dict]:
  """Per-clip features for the 2-D views and probes: MFCC means and standard deviations, median and spread of
  log pitch over voiced frames, voiced share, energy mean and spread, zero-crossing rate; and pitch/energy."""
  frames = features_lib.frame_features(clip, sample_rate, features)
  mfcc, log_f0, voicing, log_rms, zcr = (
    frames[:, : features.n_mfcc],
    frames[:, -4],
    frames[:, -3],
    frames[:, -2],
    frames[:, -1],
  )
  voiced = (voicing > 0.5) & (log_f0 != 0)
  f0 = log_f0[voiced] if voiced.any() else np.zeros(1, np.float32)
  vector = np.concatenate(
    [mfcc.mean(0), mfcc.std(0), [np.median(f0), f0.std(), voiced.mean(), log_rms.mean(), log_rms.std(), zcr.mean()]]
  ).astype(np.float32)
  pitch_hz = float(100 * 2 ** np.median(f0)) if voiced.any() else float("nan")
  return vector, {"pitch_hz": pitch_hz, "voiced_share": float(voiced.mean())}


def clip_names(config: ml_collections.ConfigDict) -> list[str]:
  """The names of `clip_vector`'s values."""
  count = config.features.n_mfcc
  return (
    [f"mfcc{i}_mean" for i in range(count)]
    + [f"mfcc{i}_std" for i in range(count)]
    + ["log2_pitch_median", "log2_pitch_std", "voiced_share", "log_rms_mean", "log_rms_std", "zcr_mean"]
  )


def signal_statistics(wave: np.ndarray, sample_rate: int, top_db: float) -> dict:
  """Duration, RMS and peak level (dBFS), clipped-sample share, silent-frame share (more than `top_db` below the
  loudest frame, as the reader's trimming defines silence), the share of samples that are exactly zero (digital
  silence: a noise gate or an edit) and an SNR estimate: the 95th minus the 10th percentile of the levels of
  frames that are not digitally silent (speech peaks over the noise floor between words), levels floored at
  LEVEL_FLOOR_DBFS (below 16-bit quantisation noise)."""
  import librosa

  rms = librosa.feature.rms(y=wave, frame_length=FRAME_LENGTH, hop_length=HOP)[0]
  level = 20 * np.log10(np.maximum(rms, 10 ** (LEVEL_FLOOR_DBFS / 20)))
  audible = level[rms > 0] if (rms > 0).any() else level
  peak = float(np.abs(wave).max())
  return {
    "duration_s": len(wave) / sample_rate,
    "rms_dbfs": float(20 * np.log10(max(np.sqrt(np.mean(wave.astype(np.float64) ** 2)), 1e-10))),
    "peak_dbfs": float(20 * np.log10(max(peak, 1e-10))),
    "clipped_share": float(np.mean(np.abs(wave) >= 0.999)),
    "silence_share": float(np.mean(level < level.max() - top_db)),
    "zero_share": float(np.mean(wave == 0)),
    "snr_db": float(np.percentile(audible, 95) - np.percentile(audible, 10)),
  }


def measure(entry: dict, config: ml_collections.ConfigDict, features: ml_collections.ConfigDict) -> dict:
  """One file: its signal statistics, and (if the reader would keep it) its per-clip features."""
  rate = config.audio.sample_rate
  try:
    wave = audio_lib.read_audio(entry["path"], rate)
  except audio_lib.BadAudio as error:
    return {"skipped": str(error)}
  result = signal_statistics(wave, rate, config.audio.trim_top_db)
  try:
    clip = audio_lib.prepare_clip(wave, config.audio)
  except audio_lib.BadAudio as error:
    return {**result, "skipped": str(error)}
  vector, prosody = clip_vector(clip, rate, features)
  return {
    **result,
    **prosody,
    "trimmed_s": len(clip) / rate,
    "vector": vector,
    "energy_dbfs": float(20 * np.log10(max(np.sqrt(np.mean(clip.astype(np.float64) ** 2)), 1e-10))),
  }


def measure_all(files: list[dict], config, progress, threads: int = 2) -> list[dict]:
  features = feature_config(config)
  results = [None] * len(files)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    futures = {pool.submit(measure, f, config, features): i for i, f in enumerate(files)}
    for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
      results[futures[future]] = future.result()
      progress.tick(done, len(files), "files measured")
  return results


def analyze(report: Report, corpus: Corpus, config: ml_collections.ConfigDict, sample: int, seed: int = 0) -> None:
  progress = report.progress
  names = corpus.class_names
  files = corpus.files
  with progress.step(f"measuring {len(files)} files"):
    results = measure_all(files, config, progress, threads=max(1, config.get("feature_threads", 2)))
  _counts(report, corpus)
  _signal(report, corpus, results)
  kept = [i for i, r in enumerate(results) if "vector" in r]
  _skipped(report, corpus, results)
  if not kept:
    return
  with progress.step("one speaker's emotions"):
    _one_speaker(report, corpus, config)
  _prosody(report, corpus, results, kept)
  with progress.step("PCA, t-SNE and probes"):
    vectors = np.stack([results[i]["vector"] for i in kept])
    label = np.array([files[i]["label"] for i in kept])
    speakers = np.array([files[i]["speaker"] for i in kept])
    speaker_variance(report, vectors, label, speakers, names, sample, seed)


def _counts(report, corpus):
  names, files = corpus.class_names, corpus.files
  speakers = sorted({f["speaker"] for f in files})
  intensities = sorted({f["intensity"] for f in files})
  matrix = np.zeros((len(names), len(speakers)), int)
  by_intensity = np.zeros((len(names), len(intensities)), int)
  for f in files:
    matrix[f["label"], speakers.index(f["speaker"])] += 1
    by_intensity[f["label"], intensities.index(f["intensity"])] += 1
  report.section("Counts by emotion, speaker and intensity")
  split_speakers = {s: sorted({f["speaker"] for f in files if f["split"] == s}) for s in ("train", "validation")}
  report.text(
    f"{len(files):,} files from {len(speakers)} speakers; "
    + "; ".join(
      f"{s}: {sum(f['split'] == s for f in files):,} files, speakers {', '.join(v)}"
      for s, v in split_speakers.items()
      if v
    )
    + " (the reader's speaker-independent split, `config.data` folds)."
  )
  report.figure(
    figures.heatmap(matrix, list(names), speakers, "Files per emotion and speaker"),
    "counts_emotion_speaker",
    "Files per emotion (rows) and speaker (columns).",
  )
  report.table(
    ["emotion"] + intensities + ["total"],
    [[n] + by_intensity[i].tolist() + [int(by_intensity[i].sum())] for i, n in enumerate(names)],
    "Files per emotion and intensity.",
  )
  report.summary["files"] = len(files)
  report.summary["speakers"] = speakers
  report.summary["split_speakers"] = split_speakers
  report.summary["counts_emotion_speaker"] = {n: dict(zip(speakers, matrix[i].tolist())) for i, n in enumerate(names)}
  report.summary["counts_emotion_intensity"] = {
    n: dict(zip(intensities, by_intensity[i].tolist())) for i, n in enumerate(names)
  }


def _signal(report, corpus, results):
  report.section("Duration, loudness, clipping, silence and noise")
  metrics = {
    "duration_s": "duration (s)",
    "trimmed_s": "duration after trimming silence (s)",
    "rms_dbfs": "loudness (RMS dBFS)",
    "peak_dbfs": "peak (dBFS)",
    "clipped_share": "clipped-sample share",
    "silence_share": "silent-frame share",
    "zero_share": "exactly-zero sample share",
    "snr_db": "SNR estimate (dB)",
  }
  panels, rows, summary = {}, [], {}
  for key, title in metrics.items():
    by_split = {}
    for f, r in zip(corpus.files, results):
      if key in r:
        by_split.setdefault(f["split"], []).append(r[key])
    if not by_split:
      continue
    panels[title] = {s: np.array(v) for s, v in by_split.items()}
    values = np.concatenate(list(panels[title].values()))
    q = np.percentile(values, [5, 50, 95])
    rows.append([title, float(values.mean()), q[0], q[1], q[2], float(values.min()), float(values.max())])
    summary[key] = {
      "mean": float(values.mean()),
      "p5": q[0],
      "median": q[1],
      "p95": q[2],
      "min": float(values.min()),
      "max": float(values.max()),
    }
  report.figure(
    figures.histograms(panels, columns=4, log_y=("clipped-sample share",)),
    "signal_distributions",
    "Per-file signal statistics by split.",
  )
  report.table(
    ["metric", "mean", "p5", "median", "p95", "min", "max"],
    rows,
    "Silence = frames more than config.data.audio.trim_top_db below the file's loudest frame; SNR "
    "estimate = 95th minus 10th percentile of frame levels (speech over the noise floor between words); "
    "clipped = |sample| >= 0.999.",
  )
  clipped = sum(1 for r in results if r.get("clipped_share", 0) > 0)
  gated = sum(1 for r in results if r.get("zero_share", 0) > 0.1)
  report.text(
    f"{clipped} files have at least one clipped sample; {gated} files have more than 10% of their samples "
    "exactly zero (digital silence: noise-gated or edited recordings, whose silence carries no room "
    "noise; models can learn the gating instead of the voice, and noise augmentation meets pure zeros)."
  )
  summary["files_with_clipping"] = clipped
  summary["files_over_10_percent_zero_samples"] = gated
  report.summary["signal"] = summary


def _skipped(report, corpus, results):
  report.section("Files the reader skips")
  rows = [[path, reason] for path, reason in corpus.skipped]
  rows += [[str(f["path"]), r["skipped"]] for f, r in zip(corpus.files, results) if "skipped" in r]
  reasons = {}
  for _, reason in rows:
    kind = reason.split(":")[0].split("(")[0].strip()
    reasons[kind] = reasons.get(kind, 0) + 1
  report.text(
    f"{len(rows)} files are skipped by the reader's rules (file names, `config.data.audio` checks): "
    + (", ".join(f"{k}: {v}" for k, v in reasons.items()) if rows else "none")
    + "."
  )
  if rows:
    report.table(["file", "reason"], rows, "Skipped files.", max_rows=40)
  report.summary["skipped"] = {"count": len(rows), "by_reason": reasons, "files": rows}


def _one_speaker(report, corpus, config):
  import librosa

  speaker = sorted({f["speaker"] for f in corpus.files})[0]
  chosen = {}
  for f in sorted(corpus.files, key=lambda f: f["path"].name):
    if f["speaker"] == speaker and f["label"] not in chosen:
      chosen[f["label"]] = f
  labels = sorted(chosen)
  rate = config.audio.sample_rate
  fig, axes = figures.plt.subplots(3, len(labels), figsize=(1.3 * len(labels), 3.8), squeeze=False)
  for column, label in enumerate(labels):
    try:
      wave = audio_lib.read_audio(chosen[label]["path"], rate)
    except audio_lib.BadAudio:
      continue
    step = max(1, len(wave) // 800)  # the envelope of 800 blocks: the same picture, a fraction of the PNG
    blocks = wave[: len(wave) // step * step].reshape(-1, step)
    time = np.arange(len(blocks)) * step / rate
    axes[0, column].fill_between(time, blocks.min(1), blocks.max(1), linewidth=0)
    axes[0, column].set_title(f"{corpus.class_names[label]}\n{chosen[label]['path'].stem}", fontsize=7)
    mel = librosa.feature.melspectrogram(
      y=wave, sr=rate, n_fft=config.features.n_fft, hop_length=HOP, n_mels=config.features.n_mels
    )
    axes[1, column].imshow(
      librosa.power_to_db(mel, ref=np.max), origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0
    )
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=config.features.n_mfcc)
    limit = np.percentile(np.abs(mfcc[1:]), 98)  # c0 (overall level) left out; symmetric colour scale
    axes[2, column].imshow(mfcc[1:], origin="lower", aspect="auto", cmap="coolwarm", vmin=-limit, vmax=limit)
    for row in range(3):
      axes[row, column].tick_params(labelsize=6)
      if column:
        axes[row, column].set_yticks([])
  axes[0, 0].set_ylabel("waveform", fontsize=8)
  axes[1, 0].set_ylabel("log-mel", fontsize=8)
  axes[2, 0].set_ylabel("MFCC 1..", fontsize=8)
  fig.tight_layout()
  report.section(f"One speaker ({speaker}), every emotion")
  report.figure(
    fig,
    "speaker_emotions",
    f"Speaker {speaker}: waveform, log-mel spectrogram (dB re max) and MFCCs "
    "(without c0) of the first file of each emotion.",
  )
  report.summary["example_speaker"] = {
    "speaker": speaker,
    "files": {corpus.class_names[k]: v["path"].name for k, v in chosen.items()},
  }


def _prosody(report, corpus, results, kept):
  names = corpus.class_names
  report.section("Pitch and energy per emotion")
  pitch = {
    n: np.array([results[i]["pitch_hz"] for i in kept if corpus.files[i]["label"] == c]) for c, n in enumerate(names)
  }
  energy = {
    n: np.array([results[i]["energy_dbfs"] for i in kept if corpus.files[i]["label"] == c]) for c, n in enumerate(names)
  }
  fig, axes = figures.plt.subplots(1, 2, figsize=(10, 3.4))
  figures.boxes(pitch, "median pitch per clip (YIN, voiced frames)", "Hz", ax=axes[0])
  figures.boxes(energy, "loudness per clip (trimmed)", "RMS dBFS", ax=axes[1])
  fig.tight_layout()
  report.figure(
    fig,
    "pitch_energy",
    "Median pitch and loudness of each clip, per emotion (all speakers; pitch mixes male and female voices).",
  )
  rows = [
    [
      n,
      len(pitch[n]),
      float(np.nanmedian(pitch[n])) if len(pitch[n]) else float("nan"),
      float(np.median(energy[n])) if len(energy[n]) else float("nan"),
    ]
    for n in names
  ]
  report.table(["emotion", "clips", "median pitch (Hz)", "median loudness (dBFS)"], rows)
  report.summary["pitch_energy"] = {
    r[0]: {"clips": r[1], "median_pitch_hz": r[2], "median_loudness_dbfs": r[3]} for r in rows
  }


def eta_squared(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
  """Per column: the share of its variance between the groups' means (one-way ANOVA R^2)."""
  total = ((values - values.mean(0)) ** 2).sum(0)
  between = np.zeros(values.shape[1])
  for group in np.unique(groups):
    member = values[groups == group]
    between += len(member) * (member.mean(0) - values.mean(0)) ** 2
  return between / np.maximum(total, 1e-12)


def per_group_standardized(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
  out = np.empty_like(values)
  for group in np.unique(groups):
    member = groups == group
    out[member] = (values[member] - values[member].mean(0)) / (values[member].std(0) + 1e-6)
  return out


def speaker_variance(report: Report, vectors, label, speakers, names, sample: int, seed: int) -> None:
  """PCA and t-SNE by emotion and by speaker; the speaker's and the emotion's share of the feature variance;
  speaker-grouped emotion probes on raw and per-speaker standardised features."""
  from sklearn.decomposition import PCA
  from sklearn.manifold import TSNE

  from emojax.explore import probe

  report.section("How much of the variance is the speaker")
  standardized = (vectors - vectors.mean(0)) / (vectors.std(0) + 1e-6)
  speaker_names = sorted(set(speakers.tolist()))
  speaker_id = np.array([speaker_names.index(s) for s in speakers])
  pca = PCA(n_components=min(10, standardized.shape[1], len(standardized)), random_state=seed)
  components = pca.fit_transform(standardized)
  rows = np.arange(len(standardized))
  if len(rows) > sample:
    rows = np.sort(np.random.default_rng(seed).choice(len(rows), sample, replace=False))
    report.sampled(f"t-SNE of {sample:,} of {len(standardized):,} clips")
  perplexity = float(min(30, max(2, (len(rows) - 1) // 3)))
  embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
    standardized[rows]
  )
  panels = [
    ("PCA by emotion", components[:, :2], label, list(names)),
    ("PCA by speaker", components[:, :2], speaker_id, speaker_names),
    ("t-SNE by emotion", embedded, label[rows], list(names)),
    ("t-SNE by speaker", embedded, speaker_id[rows], speaker_names),
  ]
  report.figure(
    figures.scatter_panels(panels),
    "pca_tsne",
    "Per-clip features (MFCC means and spreads, pitch, "
    "voicing, energy, zero crossings; standardised) in 2-D, coloured by emotion and by speaker.",
  )
  eta_speaker = eta_squared(standardized, speaker_id)
  eta_emotion = eta_squared(standardized, label)
  eta_emotion_within = eta_squared(per_group_standardized(vectors, speaker_id), label)
  pcs_speaker = eta_squared(components, speaker_id)
  pcs_emotion = eta_squared(components, label)
  summary = {
    "features": int(vectors.shape[1]),
    "clips": int(len(vectors)),
    "variance_share_speaker_mean": float(eta_speaker.mean()),
    "variance_share_emotion_mean": float(eta_emotion.mean()),
    "variance_share_emotion_after_speaker_standardization": float(eta_emotion_within.mean()),
    "pca_explained_variance": pca.explained_variance_ratio_.tolist(),
    "pc_variance_share_speaker": pcs_speaker.tolist(),
    "pc_variance_share_emotion": pcs_emotion.tolist(),
  }
  report.table(
    ["", "mean over features", "PC1", "PC2", "PC3"],
    [
      ["speaker"] + [float(eta_speaker.mean())] + pcs_speaker[:3].tolist(),
      ["emotion"] + [float(eta_emotion.mean())] + pcs_emotion[:3].tolist(),
    ],
    "Share of variance between speaker means and between emotion means (one-way R^2), over the "
    f"standardised features and along the first principal components (PC1-3 explain "
    f"{', '.join(f'{100 * v:.0f}%' for v in pca.explained_variance_ratio_[:3])} of the variance).",
  )
  if len(speaker_names) >= 2:
    probes = {
      "speaker identity (stratified 5-fold)": probe.cross_validate(standardized, speaker_id, None, seed),
      "emotion, unseen speakers (speaker folds)": probe.cross_validate(standardized, label, speaker_id, seed),
      "emotion, unseen speakers, per-speaker standardised": probe.cross_validate(
        per_group_standardized(vectors, speaker_id), label, speaker_id, seed
      ),
    }
    report.table(
      ["logistic-regression probe", "accuracy", "balanced accuracy", "macro F1", "chance (majority)"],
      [[k, v["accuracy"], v["balanced_accuracy"], v["macro_f1"], v["chance"]] for k, v in probes.items()],
      "Cross-validated linear probes on the same per-clip features.",
    )
    summary["probes"] = probes
  text = (
    f"The speaker explains {100 * eta_speaker.mean():.0f}% of the per-clip feature variance on average, the "
    f"emotion {100 * eta_emotion.mean():.0f}%; standardising each speaker's features leaves the emotion "
    f"{100 * eta_emotion_within.mean():.0f}% of what remains."
  )
  if "probes" in summary:
    raw, normalized = (
      summary["probes"][k]["balanced_accuracy"]
      for k in ("emotion, unseen speakers (speaker folds)", "emotion, unseen speakers, per-speaker standardised")
    )
    text += (
      f" Per-speaker standardisation (each speaker's statistics from all of that speaker's clips, which "
      f"needs unlabelled audio of a new speaker) moves the unseen-speaker emotion probe from "
      f"{100 * raw:.1f}% to {100 * normalized:.1f}% balanced accuracy."
    )
  report.text(text)
  report.summary["speaker_variance"] = summary
