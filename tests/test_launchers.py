"""The launch/ shell scripts: they parse, print their usage when given too few arguments, and their dry runs print
the commands a multi-process, SLURM or TPU pod run would execute (nothing is run, no cluster or network needed)."""

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO

LAUNCH = REPO / "launch"
SCRIPTS = sorted([*LAUNCH.glob("*.sh"), *LAUNCH.glob("*.sbatch")])
MIN_ARGS = {"local.sh": 2, "multiprocess.sh": 3, "slurm.sbatch": 2, "tpu_pod.sh": 4}
EXTRA = ["--config.train.num_steps=7", "--config.model.width=0.5"]


def launch(script, *args, **env_vars):
  """Runs launch/<script> with bash in a copy of the environment free of SLURM and launcher variables."""
  env = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith("SLURM_")
    and k not in ("DRY_RUN", "NODES", "PORT", "PYTHON", "PROJECT", "SETUP", "SETUP_COMMAND", "REMOTE_DIR")
  }
  env.update(env_vars)
  return subprocess.run(
    ["bash", str(LAUNCH / script), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=10
  )


def test_the_new_launchers_are_found():
  assert {"multiprocess.sh", "slurm.sbatch", "tpu_pod.sh"} <= {s.name for s in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_parses(script):
  result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=10)
  assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_too_few_arguments_print_the_usage_and_fail(script):
  for count in sorted({0, MIN_ARGS.get(script.name, 1) - 1}):
    result = launch(script.name, *["x"] * count)
    assert result.returncode != 0
    assert f"launch/{script.name}" in result.stdout, result.stdout + result.stderr


def test_shellcheck():
  if shutil.which("shellcheck") is None:
    pytest.skip("shellcheck is not installed")
  result = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stdout + result.stderr


def test_multiprocess_dry_run_prints_one_command_per_process():
  result = launch("multiprocess.sh", "4", "runs/mp4", "configs/face_cnn.py", *EXTRA, DRY_RUN="1", PORT="23456")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert len(lines) == 4
  for i, line in enumerate(lines):
    assert f"--config.process_id={i} " in line
    assert "--config.num_processes=4 " in line
    assert "--config.coordinator_address=localhost:23456 " in line
    assert line.endswith(" ".join(EXTRA))


def test_slurm_dry_run_prints_the_srun_line_and_every_task():
  result = launch(
    "slurm.sbatch", "runs/slurm", "configs/face_cnn.py:data=synthetic", *EXTRA, DRY_RUN="1", NODES="a b c", PORT="23456"
  )
  assert result.returncode == 0, result.stderr
  srun, *tasks = result.stdout.splitlines()
  assert srun.startswith("srun --ntasks=3 --ntasks-per-node=1 ")
  assert "--config.process_id=$SLURM_PROCID" in srun  # expanded by each task, not by the batch script
  assert len(tasks) == 3
  for i, (host, line) in enumerate(zip("abc", tasks)):
    assert line.startswith(f"# task {i} on {host}: cd ")
    assert re.findall(r"--config\.process_id=(\S+)", line) == [str(i)]
    for arg in [
      "--config.distributed=True",
      "--config.num_processes=3",
      "--config.coordinator_address=a:23456",
      "--workdir runs/slurm",
      *EXTRA,
    ]:
      assert f" {arg} " in line, arg
    assert "emojax.main --config configs/face_cnn.py:data=synthetic " in line


def test_slurm_task_command_survives_the_shell_quoting(tmp_path):
  """The srun line's `bash -c '...'` run as a task would run it gives python exactly the intended arguments."""
  printer = tmp_path / "python"
  printer.write_text('#!/bin/sh\nfor a; do echo "$a"; done\n')
  printer.chmod(0o755)
  awkward = '--config.name=it\'s a $HOME "run"'
  result = launch(
    "slurm.sbatch",
    "runs/a b",
    "configs/face_cnn.py:data=synthetic,runlocal",
    awkward,
    DRY_RUN="1",
    NODES="h1 h2",
    PYTHON=str(printer),
  )
  srun = result.stdout.splitlines()[0]
  script = 'srun() { while [[ $1 == --* ]]; do shift; done; SLURM_PROCID=1 "$@"; }\n' + srun
  argv = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10).stdout.splitlines()
  assert argv == [
    "-m",
    "emojax.main",
    "--config",
    "configs/face_cnn.py:data=synthetic,runlocal",
    "--workdir",
    "runs/a b",
    "--config.distributed=True",
    "--config.coordinator_address=h1:12345",
    "--config.num_processes=2",
    awkward,
    "--config.process_id=1",
  ]


def test_slurm_outside_an_allocation_refuses_to_run():
  result = launch("slurm.sbatch", "runs/slurm", "configs/face_cnn.py")
  assert result.returncode != 0
  assert "SLURM" in result.stderr


def test_tpu_pod_dry_run_prints_the_gcloud_command():
  result = launch(
    "tpu_pod.sh",
    "my-v4-32",
    "us-central2-b",
    "gs://bucket/runs/x",
    "configs/face_cnn.py",
    *EXTRA,
    DRY_RUN="1",
    PROJECT="my-project",
  )
  assert result.returncode == 0, result.stderr
  [line] = result.stdout.splitlines()
  assert line.startswith("gcloud compute tpus tpu-vm ssh my-v4-32 --zone us-central2-b --project my-project ")
  assert "--worker=all" in line
  for arg in ["--config.distributed=True", "--workdir gs://bucket/runs/x", *EXTRA]:
    assert f" {arg}" in line, arg
  assert "--config.process_id" not in line and "--config.num_processes" not in line  # detected on TPU VMs
  assert "'cd ~/emojax && " in line


def test_tpu_pod_setup_runs_first_on_every_worker():
  result = launch(
    "tpu_pod.sh",
    "tpu",
    "zone",
    "gs://b/x",
    "configs/face_cnn.py",
    DRY_RUN="1",
    SETUP="1",
    SETUP_COMMAND="pip install -e .",
  )
  setup, train = result.stdout.splitlines()
  assert setup.endswith("--worker=all --command 'cd ~/emojax && pip install -e .'")
  assert "emojax.main" in train
