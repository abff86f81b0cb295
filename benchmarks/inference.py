"""Inference latency and throughput of trained models through `emojax.inference.Recognizer`, on this machine.

  python benchmarks/inference.py --face runs/fer_resattn_w050_e2/bundle --speech runs/ravdess8_conformer/bundle \
      --text runs/goemotions28_minilm/bundle --fusion runs/demo/bundle [--iterations 200] [--json out.json]

Rows (a model not given as a bundle is built from its config with random weights: the same computation):
- face models (ResidualAttentionCNN, DeepCNN at `--face_width`): the model alone (a decoded 48x48 face, batch 1:
  p50 / p95 latency; batch 32: faces/s), and a photo to labels (a 640x480 picture holding one face: decoding,
  OpenCV's Haar detection, crop, model; batch 1);
- the Conformer on 3 s of speech: the model alone on the clip's features, and a recording (FLAC) to labels
  (decoding, trimming, log-mel features, model);
- MiniLM on a 20-token comment: the model alone, and text to labels (cleaning, tokenizing, model);
- an end-to-end fusion bundle: one face, one utterance and one text to the fused prediction;
- cold start: a fresh process loading the bundle and compiling every bucket shape, with JAX's persistent
  compilation cache off, and with it warm.
Latencies are wall-clock per call, after every bucket is compiled; tests never assert on them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emojax import sharding  # noqa: E402

sharding.configure_xla_cpu(ynnpack=False)  # as training and the CLI run: before JAX starts

import jax  # noqa: E402
import numpy as np  # noqa: E402

from emojax.config_utils import data_dir  # noqa: E402


def latency(fn, iterations: int) -> dict:
  """p50 / p95 milliseconds of `fn()` over `iterations` calls (after two untimed calls)."""
  for _ in range(2):
    fn()
  times = []
  for _ in range(iterations):
    start = time.perf_counter()
    fn()
    times.append((time.perf_counter() - start) * 1000)
  return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def throughput(fn, items: int, iterations: int) -> float:
  """Items per second of `fn()` (which handles `items` at once)."""
  fn()
  start = time.perf_counter()
  for _ in range(iterations):
    fn()
  return items * iterations / (time.perf_counter() - start)


def untrained(config):
  """A TrainedModel of `config` with random weights (latency does not depend on them)."""
  from emojax import data
  from emojax.inference import bundle, inputs
  from emojax.models import get_model

  space = data.label_space_of(config.data)
  model = get_model(config.model, len(space.class_names), **bundle.model_kwargs_of(config))
  spec = inputs.input_spec(config.data)
  example = {k: v[None] for k, v in spec.example.items()}
  variables = jax.device_get(
    model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, example, train=False)
  )
  variables = {"params": variables.get("params", {}), "batch_stats": variables.get("batch_stats", {})}
  return bundle.TrainedModel(config, model, variables, space, spec, None, None, {"kind": "random init"})


def recognizer_for(path: str, config_factory):
  from emojax.inference import Recognizer

  if path:
    return Recognizer.load(path), f"bundle {path}"
  return Recognizer(untrained(config_factory())), "random weights"


def model_alone(recognizer, example: dict, iterations: int) -> dict:
  """Batch 1 latency and batch 32 throughput of the jitted model on a prepared example (padding to the bucket
  included: what `Recognizer.run` does)."""
  one = latency(lambda: recognizer.run([example]), iterations)
  batch = [example] * 32
  rate = throughput(lambda: recognizer.run(batch), 32, max(3, iterations // 20))
  return {**{f"model_{k}": v for k, v in one.items()}, "model_batch32_per_second": rate}


def face_photo(size=(640, 480)):
  """A picture with one face: a FER2013 validation face (found by the detector at this scale) on a gray canvas."""
  from PIL import Image

  face = sorted((Path(data_dir("fer2013")) / "validation" / "happy").glob("*.jpg"))[0]
  canvas = Image.new("L", size, 110)
  canvas.paste(Image.open(face).resize((200, 200), Image.BILINEAR), (220, 120))
  return np.asarray(canvas)


def face_rows(args) -> list[dict]:
  from configs.face_cnn import get_config

  photo = face_photo()
  rows = []
  for model, path in (("residual_attention", args.face), ("deep_cnn", args.deep_cnn_face)):

    def config(model=model):
      c = get_config(f"model={model}")
      c.model.width = args.face_width
      return c

    recognizer, weights = recognizer_for(path, config)
    if not recognizer.predict(face=photo).faces:
      raise RuntimeError("The benchmark photo holds no face the detector finds.")
    row = {
      "model": f"{recognizer.config.model.name} width {recognizer.config.model.width}",
      "weights": weights,
      **model_alone(recognizer, {"image": _first_face_input(photo)}, args.iterations),
    }
    row.update(
      {f"photo_{k}": v for k, v in latency(lambda r=recognizer: r.predict(face=photo), args.iterations).items()}
    )
    row["compiled_programs"] = recognizer.compiled_programs()
    rows.append(row)
  return rows


def _first_face_input(photo):
  from emojax.inference import inputs

  faces, _ = inputs.face_examples(photo, "haar")
  return faces[0].image


def speech_row(args) -> dict:
  from configs.speech import get_config
  from emojax.inference import inputs

  recognizer, weights = recognizer_for(args.speech, lambda: get_config("model=conformer"))
  files = sorted(Path(data_dir("ravdess")).glob("Actor_01/*.flac"))
  # 3 s of speech: the longest file (after trimming silence) of actor 01, which fills the clip cap
  lengths = {
    file: inputs.speech_windows(file, recognizer.config.data, recognizer.hop_seconds, recognizer.long_recording_seconds)
    for file in files
  }
  path = max(files, key=lambda file: lengths[file][1])
  windows, seconds = lengths[path]
  clip = windows[0].example
  row = {
    "model": "speech.conformer",
    "weights": weights,
    "seconds": round(min(seconds, 3.0), 2),
    **model_alone(recognizer, clip, args.iterations),
  }
  row.update(
    {
      f"file_{k}": v
      for k, v in latency(lambda: recognizer.predict(audio=str(path)), max(10, args.iterations // 4)).items()
    }
  )
  row["compiled_programs"] = recognizer.compiled_programs()
  return row


COMMENT = "I honestly can't believe how well this turned out, thank you all so much!"  # 20 tokens with MiniLM's


def text_row(args) -> dict:
  from configs.text import get_config
  from emojax.inference import inputs

  recognizer, weights = recognizer_for(args.text, lambda: get_config(""))
  example = inputs.text_examples([COMMENT], recognizer.config.data)[0]
  row = {
    "model": "text.classifier (all-MiniLM-L6-v2)",
    "weights": weights,
    "tokens": int(example["attention_mask"].sum()),
    **model_alone(recognizer, example, args.iterations),
  }
  row.update({f"text_{k}": v for k, v in latency(lambda: recognizer.predict(text=COMMENT), args.iterations).items()})
  row["compiled_programs"] = recognizer.compiled_programs()
  return row


def fusion_row(args) -> dict:
  from emojax.data import synthetic
  from emojax.inference import Recognizer

  recognizer = Recognizer.load(args.fusion)
  rng = np.random.default_rng(0)
  face = synthetic.draw_face(3, rng)
  frames = rng.standard_normal(recognizer.spec.example["speech_features"].shape).astype(np.float32)
  ids = rng.integers(8, 64, 10)
  one = latency(lambda: recognizer.predict(face=face, audio=frames, text=ids, detect="none"), args.iterations)
  rate = throughput(
    lambda: recognizer.predict_batch(faces=[face] * 32, audios=[frames] * 32, texts=[ids] * 32, detect="none"),
    32,
    max(3, args.iterations // 20),
  )
  return {
    "model": f"fusion.end_to_end ({recognizer.config.model.fusion.name})",
    "weights": f"bundle {args.fusion}",
    **{f"inputs_{k}": v for k, v in one.items()},
    "inputs_batch32_per_second": rate,
    "compiled_programs": recognizer.compiled_programs(),
  }


COLD_START = """
import sys, time
start = time.perf_counter()
from emojax import sharding
sharding.configure_xla_cpu(ynnpack=False)
from emojax.inference import Recognizer
imported = time.perf_counter()
recognizer = Recognizer.load(sys.argv[1], compilation_cache=sys.argv[2])
print(imported - start, time.perf_counter() - imported, recognizer.compiled_programs())
"""


def cold_start(path: str) -> dict:
  """Seconds from a fresh process to a loaded, compiled model: cache off, then an empty cache, then warm."""
  with tempfile.TemporaryDirectory() as cache:
    figures = {}
    for name, directory in (("no_cache", ""), ("empty_cache", cache), ("warm_cache", cache)):
      result = subprocess.run(
        [sys.executable, "-c", COLD_START, path, directory],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
      )
      imported, loaded, programs = result.stdout.split()[-3:]
      figures[name] = {
        "import_seconds": float(imported),
        "load_and_compile_seconds": float(loaded),
        "programs": int(programs),
      }
  return {"bundle": path, **figures}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--face", default="", help="ResidualAttentionCNN bundle (else random weights)")
  parser.add_argument("--deep_cnn_face", default="", help="DeepCNN bundle (else random weights)")
  parser.add_argument("--face_width", type=float, default=0.5, help="width of face models built from configs")
  parser.add_argument("--speech", default="", help="Conformer bundle (else random weights)")
  parser.add_argument("--text", default="", help="MiniLM text bundle (else random weights)")
  parser.add_argument("--fusion", default="", help="end-to-end fusion bundle (make demo: runs/demo/bundle)")
  parser.add_argument("--cold_start", action="append", default=[], help="bundles to time a cold start of")
  parser.add_argument("--iterations", type=int, default=200)
  parser.add_argument("--only", default="face,speech,text,fusion,cold", help="rows to run")
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  from emojax.inference.recognizer import Recognizer  # noqa: F401 (fail early when the package is broken)

  only = set(args.only.split(","))
  report = {"devices": str(jax.devices()), "cpus": os.cpu_count()}
  if "face" in only:
    report["face"] = face_rows(args)
  if "speech" in only:
    report["speech"] = speech_row(args)
  if "text" in only:
    report["text"] = text_row(args)
  if "fusion" in only and args.fusion:
    report["fusion"] = fusion_row(args)
  if "cold" in only:
    report["cold_start"] = [cold_start(path) for path in args.cold_start]
  print(json.dumps(report, indent=2))
  print()
  print(markdown(report))
  if args.json:
    Path(args.json).write_text(json.dumps(report, indent=2))


def markdown(report: dict) -> str:
  from emojax.reports import markdown_table

  rows = []

  def add(row: dict, what: str, prefix: str) -> None:
    """One table row from a report row's `<prefix>_p50_ms`, `_p95_ms` and (model-alone rows) batch-32 rate."""
    per_second = row.get(f"{prefix}_batch32_per_second")
    rows.append(
      {
        "model": row["model"],
        "input": what,
        "batch 1 p50 ms": f"{row[f'{prefix}_p50_ms']:.2f}",
        "batch 1 p95 ms": f"{row[f'{prefix}_p95_ms']:.2f}",
        "batch 32 per second": "" if per_second is None else f"{per_second:.0f}",
      }
    )

  for row in report.get("face", []):
    add(row, "48x48 face (model alone)", "model")
    add(row, "640x480 photo -> labels (Haar detection)", "photo")
  if "speech" in report:
    add(report["speech"], f"{report['speech']['seconds']} s of speech (model alone)", "model")
    add(report["speech"], "FLAC file -> labels", "file")
  if "text" in report:
    add(report["text"], f"{report['text']['tokens']}-token comment (model alone)", "model")
    add(report["text"], "text -> labels", "text")
  if "fusion" in report:
    add(report["fusion"], "face + speech + text -> fused", "inputs")
  lines = markdown_table(rows)
  for row in report.get("cold_start", []):
    lines += [
      "",
      f"Cold start of {row['bundle']} (import, then load + compile {row['warm_cache']['programs']} "
      "programs): "
      + "; ".join(
        f"{name.replace('_', ' ')} {row[name]['import_seconds']:.1f} + {row[name]['load_and_compile_seconds']:.1f} s"
        for name in ("no_cache", "empty_cache", "warm_cache")
      ),
    ]
  return "\n".join(lines)


if __name__ == "__main__":
  main()
