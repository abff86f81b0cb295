"""Two cooperating processes (jax.distributed over loopback, gloo CPU collectives) train exactly what one process
with the same devices and global batch trains, and their checkpoints resume and restore on another process and
device count."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # trains models, runs servers, browsers or subprocesses

CONFIG = "configs/face_cnn.py:data=synthetic,runlocal"
ARGS = [
  "--config.train.num_steps=6",
  "--config.train.log_every_steps=2",
  "--config.checkpoint.every_steps=2",
  "--config.checkpoint.async_save=False",
  "--config.compilation_cache_dir=",
  "--config.train.tensorboard=False",
]


def losses(workdir):
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {(r["step"], r["split"]): r["loss"] for r in records}


def run(env, workdir, processes=1, devices=1, extra=()):
  """`processes` processes of `devices` CPU devices each (the multi-process launcher for more than one)."""
  env = {**env, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  if processes > 1:
    command = ["bash", str(REPO / "launch" / "multiprocess.sh"), str(processes), str(workdir), CONFIG]
  else:
    command = [sys.executable, "-m", "emojax.main", "--config", CONFIG, "--workdir", str(workdir)]
  result = subprocess.run([*command, *ARGS, *extra], env=env, cwd=REPO, timeout=600, capture_output=True, text=True)
  logs = "".join(p.read_text() for p in sorted(workdir.glob("process_*.log")))
  assert result.returncode == 0, result.stderr[-3000:] + logs[-3000:]


def final_logits(env, workdir):
  """The final (step 6) parameters' logits on the validation split, restored by 1 process on 1 device."""
  run(env, workdir, extra=["--mode=eval", "--checkpoint=latest"])
  return np.load(workdir / "eval_latest_validation" / "predictions.npz")["logits"]


def test_two_processes_match_one_process_and_checkpoints_move_between_them(tmp_path):
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
  env["PYTHON"] = sys.executable
  one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
  run(env, one, processes=1, devices=2)
  run(env, two, processes=2, devices=1)
  assert set(losses(two)) == set(losses(one)) == {(2, "train"), (4, "train"), (6, "train"), (6, "validation")}
  for key, value in losses(one).items():  # the validation loss is computed with the final parameters
    assert losses(two)[key] == pytest.approx(value, rel=1e-5), key

  # The one-process run, cut back to its step-4 checkpoint, finishes on two processes: the data stream and the
  # state both continue where they left off.
  shutil.copytree(one, resumed)
  shutil.rmtree(resumed / "checkpoints" / "6")
  run(env, resumed, processes=2, devices=1)
  assert losses(resumed)[(6, "train")] == pytest.approx(losses(one)[(6, "train")], rel=1e-5)

  # Checkpoints written by two processes (and by two devices) restore on one process with one device.
  reference = final_logits(env, one)
  np.testing.assert_allclose(final_logits(env, two), reference, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(final_logits(env, resumed), reference, rtol=1e-4, atol=1e-5)


def test_two_processes_match_one_process_on_the_grain_pipeline(tmp_path):
  """The test above runs the default (on-device) input pipeline; the host pipeline slices each global batch per
  process instead (`pipeline.ProcessSlice`), and must train the same numbers too."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
  env["PYTHON"] = sys.executable
  grain = ["--config.data.pipeline=grain"]
  run(env, tmp_path / "one", processes=1, devices=2, extra=grain)
  run(env, tmp_path / "two", processes=2, devices=1, extra=grain)
  for key, value in losses(tmp_path / "one").items():
    assert losses(tmp_path / "two")[key] == pytest.approx(value, rel=1e-5), key
