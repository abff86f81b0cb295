"""Speech feature extraction throughput, cold (decode + features + cache write) and from the cache.

  python benchmarks/speech_features.py --config configs/speech.py --files 240
  python benchmarks/speech_features.py --config configs/speech.py --config.data.features.prosody=True

Reads the first `--files` files of the corpus through the reader's own `features.extract`, once
into an empty cache and once more from it, and prints files/s for each pass.
"""

import tempfile
import time
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from emojax.data import audio, features, speech

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Speech config whose data section is measured.")
flags.DEFINE_integer("files", 240, "How many files to featurise.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  data = FLAGS.config.data
  files = speech.find_files(Path(data.root), data.name)[: FLAGS.files]
  features.extract(files[0], data, None)  # librosa's numba kernels compile on first use: not timed
  # (the first file is assumed usable; later unusable files are counted)
  with tempfile.TemporaryDirectory() as directory:
    cache = features.FeatureCache(directory, data)
    rates, skipped = {}, set()
    for label in ("cold", "cached"):
      start = time.perf_counter()
      for file in files:
        try:
          features.extract(file, data, cache)
        except audio.BadAudio as error:
          skipped.add(f"{file}: {error}")
      rates[label] = len(files) / (time.perf_counter() - start)
  settings = data.features
  print(
    f"corpus {data.name}: {len(files)} files, features kind={settings.kind} prosody={settings.prosody} "
    f"pitch={settings.pitch_method} egemaps={settings.egemaps} (one thread)"
  )
  print(f"files_per_second_without_cache {rates['cold']:.1f}")
  print(f"files_per_second_from_cache {rates['cached']:.1f}")
  print(f"cache_hits {cache.hits} computed {cache.misses} skipped {len(skipped)} (unusable audio)")


if __name__ == "__main__":
  app.run(main)
