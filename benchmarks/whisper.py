"""Whisper base on this machine: speech-to-text word error rate and speed, and the Flax encoder's feature throughput.

  python benchmarks/whisper.py --files 0                         # WER + real-time factor over every RAVDESS clip
  python benchmarks/whisper.py --files 120 --compute_type float32 --beam_size 1
  python benchmarks/whisper.py --files 0 --encoder_clips 0 --json runs/whisper_wer.json
  python benchmarks/whisper.py --files -1 --encoder_clips 40       # encoder throughput only

Transcription: `emojax.speech_to_text.transcribe` on the RAVDESS files (the two sentences every actor says are the
references; words lower-cased, punctuation dropped). Prints the corpus WER (total errors / total reference words),
the share of clips transcribed exactly, the real-time factor (transcription seconds / audio seconds, the first clip
excluded as warm-up) and the worst transcripts. Encoder: clips/s of `whisper_features.encoder_summaries` (log-mel +
the frozen Flax encoder + per-layer statistics) for the clip's own window and for Whisper's 30 s window.
"""

import collections
import json
import time
from pathlib import Path

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from emojax import speech_to_text
from emojax.config_utils import data_dir
from emojax.data import audio as audio_lib
from emojax.data import speech, whisper_features

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/speech.py", "Speech config whose audio settings cut the clips.")
flags.DEFINE_string("root", data_dir("ravdess"), "RAVDESS folder.")
flags.DEFINE_integer("files", 120, "Clips to transcribe (every k-th file so all actors appear); 0 = all; -1 = none.")
flags.DEFINE_integer("beam_size", None, "Beam size; default: speech_to_text.default_config().")
flags.DEFINE_string("compute_type", None, "CTranslate2 compute type (int8, float32); default: the module's.")
flags.DEFINE_integer("cpu_threads", 1, "CTranslate2 threads.")
flags.DEFINE_integer("encoder_clips", 20, "Clips for the encoder throughput (each window); 0 skips it.")
flags.DEFINE_string("json", "", "Also write the figures (and every transcript) to this JSON file.")


def _pick(files: list, count: int) -> list:
  return files if count <= 0 or count >= len(files) else files[:: len(files) // count][:count]


def transcription(files: list) -> dict:
  settings = speech_to_text.default_config()
  settings.cpu_threads = FLAGS.cpu_threads
  if FLAGS.beam_size is not None:
    settings.beam_size = FLAGS.beam_size
  if FLAGS.compute_type:
    settings.compute_type = FLAGS.compute_type
  errors = words = exact = 0
  audio_seconds = processing_seconds = 0.0
  rows, confusions = [], collections.Counter()
  for index, path in enumerate(files):
    reference = speech_to_text.ravdess_reference(path.name)
    transcript = speech_to_text.transcribe(path, config=settings)
    wrong, count = speech_to_text.word_errors(reference, transcript.text)
    errors, words, exact = errors + wrong, words + count, exact + (wrong == 0)
    if index:  # the first clip pays for loading and warming up the model
      audio_seconds += transcript.seconds
      processing_seconds += transcript.processing_seconds
    if wrong:
      confusions[transcript.text] += 1
    rows.append(
      {
        "file": path.name,
        "reference": reference,
        "text": transcript.text,
        "errors": wrong,
        "seconds": transcript.seconds,
        "processing_seconds": transcript.processing_seconds,
      }
    )
  figures = {
    "clips": len(files),
    "reference_words": words,
    "word_errors": errors,
    "wer": errors / words,
    "exact_clips": exact / len(files),
    "real_time_factor": processing_seconds / max(audio_seconds, 1e-9),
    "seconds_per_clip": processing_seconds / max(len(files) - 1, 1),
    "settings": settings.to_dict(),
  }
  print(
    f"transcription: {len(files)} clips, WER {figures['wer']:.4f} ({errors}/{words} words), exact "
    f"{figures['exact_clips']:.3f}, real-time factor {figures['real_time_factor']:.3f} "
    f"({figures['seconds_per_clip']:.2f} s per clip; {settings.compute_type}, beam {settings.beam_size}, "
    f"{settings.cpu_threads} thread(s))"
  )
  for text, count in confusions.most_common(8):
    print(f"  {count} x {text!r}")
  figures["transcripts"] = rows
  return figures


def encoder_throughput(files: list) -> dict:
  figures = {}
  waves = [audio_lib.prepare_clip(audio_lib.read_audio(p, 16000), FLAGS.config.data.audio) for p in files]
  for window in whisper_features.WINDOWS:
    whisper_features.encoder_summaries(waves[0], window)  # compiles for this length: not timed
    started = time.perf_counter()
    for wave in waves:
      whisper_features.encoder_summaries(wave, window)
    elapsed = time.perf_counter() - started
    figures[f"encoder_clips_per_second_{window}"] = len(waves) / elapsed
    print(
      f"encoder features, window={window}: {len(waves) / elapsed:.2f} clips/s "
      f"(mean clip {np.mean([len(w) for w in waves]) / 16000:.2f} s; each new clip length compiles once)"
    )
  return figures


def main(argv):
  del argv
  files = speech.find_files(Path(FLAGS.root), "ravdess")
  figures = {}
  parts = ([lambda: transcription(_pick(files, FLAGS.files))] if FLAGS.files >= 0 else []) + (
    [lambda: encoder_throughput(_pick(files, FLAGS.encoder_clips))] if FLAGS.encoder_clips else []
  )
  for part in parts:
    figures.update(part())
    if FLAGS.json:  # after each part, so a long transcription's figures survive a later failure
      Path(FLAGS.json).parent.mkdir(parents=True, exist_ok=True)
      Path(FLAGS.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
  app.run(main)
