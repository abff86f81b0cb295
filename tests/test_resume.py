"""A run killed with SIGKILL at any moment, even mid-save, resumes to bit-identical parameters."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # trains models, runs servers, browsers or subprocesses

ARGS = [
  "--config",
  "configs/face_cnn.py:data=synthetic,runlocal",
  "--config.data.num_train_examples=320",
  "--config.data.num_eval_examples=64",
  "--config.model.width=0.125",
  "--config.train.batch_size=32",
  "--config.train.num_epochs=4",
  "--config.train.log_every_steps=5",
  "--config.checkpoint.every_steps=3",
  "--config.train.tensorboard=False",
  "--config.eval.batch_size=32",
]
FINAL_STEP = 40


def _start(workdir: Path) -> subprocess.Popen:
  env = {**os.environ, "XLA_FLAGS": "", "PYTHONUNBUFFERED": "1"}
  return subprocess.Popen(
    [sys.executable, "-m", "emojax.main", *ARGS, "--workdir", str(workdir)],
    cwd=REPO,
    env=env,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )


def _final_params(workdir: Path):
  state = ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(FINAL_STEP) / "state")
  return state["params"], state["batch_stats"], state["opt_state"]


def _saving(checkpoints: Path) -> bool:
  return checkpoints.is_dir() and any("tmp" in p.name for p in checkpoints.iterdir())


def test_sigkill_anywhere_then_resume_is_bitwise_identical(tmp_path):
  reference = _start(tmp_path / "reference")
  assert reference.wait(timeout=600) == 0, reference.stderr.read()[-3000:]

  workdir, checkpoints = tmp_path / "killed", tmp_path / "killed" / "checkpoints"
  kills_mid_save, kills = 0, 0
  # Kill twice as soon as a save is in flight, then once at an arbitrary moment, then let it finish.
  for plan in ("mid_save", "mid_save", "anytime", "finish"):
    process = _start(workdir)
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline and plan != "finish":
      if plan == "mid_save" and _saving(checkpoints):
        process.send_signal(signal.SIGKILL)
        kills_mid_save += 1
        break
      if plan == "anytime" and checkpoints.is_dir() and len(list(checkpoints.iterdir())) >= 1:
        time.sleep(np.random.default_rng(0).uniform(0.5, 3.0))
        process.send_signal(signal.SIGKILL)
        break
      time.sleep(0.002)
    returncode = process.wait(timeout=600)
    kills += returncode == -signal.SIGKILL
    if plan == "finish":
      assert returncode == 0, process.stderr.read()[-3000:]
  assert kills_mid_save >= 1 and kills >= 2

  # Evaluation history survives too: same best step and metric, same early-stopping counters.
  loop = lambda w: json.loads((w / "checkpoints" / str(FINAL_STEP) / "loop" / "metadata").read_text())
  assert loop(workdir) == loop(tmp_path / "reference")
  for want, got in zip(_final_params(tmp_path / "reference"), _final_params(workdir)):
    flat_want, flat_got = ocp.tree.to_flat_dict(want), ocp.tree.to_flat_dict(got)
    assert flat_want.keys() == flat_got.keys()
    for key in flat_want:
      np.testing.assert_array_equal(np.asarray(flat_got[key]), np.asarray(flat_want[key]), err_msg=str(key))
