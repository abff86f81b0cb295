"""Two cooperating processes (jax.distributed over loopback, gloo CPU collectives) train exactly what one process
with the same devices and global batch trains."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

ARGS = ["configs/face_cnn.py:data=synthetic,runlocal", "--config.train.num_steps=6", "--config.train.log_every_steps=2",
        "--config.compilation_cache_dir=", "--config.train.tensorboard=False"]


def losses(workdir):
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {(r["step"], r["split"]): r["loss"] for r in records}


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
  env["PYTHON"] = sys.executable
  subprocess.run(["bash", str(REPO / "launch" / "multiprocess.sh"), "2", str(tmp_path / "two"), *ARGS],
                 check=True, env=env, cwd=REPO, timeout=600, capture_output=True)
  subprocess.run([sys.executable, "-m", "emojax.main", "--config", ARGS[0], "--workdir", str(tmp_path / "one"),
                  *ARGS[1:]], check=True, cwd=REPO, timeout=600, capture_output=True,
                 env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
  two, one = losses(tmp_path / "two"), losses(tmp_path / "one")
  assert set(two) == set(one) == {(2, "train"), (4, "train"), (6, "train"), (6, "validation")}
  for key in one:  # the validation loss is computed with the final parameters
    assert two[key] == pytest.approx(one[key], rel=1e-5), key
