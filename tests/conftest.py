"""Every test process sees 8 CPU devices, so sharding code runs the way it does on a pod slice."""

import os
import sys
import tempfile
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
