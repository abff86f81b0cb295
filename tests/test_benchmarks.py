"""The benchmark scripts run end to end and report every figure; the PyTorch references mirror the Flax models."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.conftest import REPO, tiny_config

pytestmark = pytest.mark.slow  # trains models, runs servers, browsers or subprocesses

SMOKE = [
  "configs/face_cnn.py:data=synthetic,runlocal",
  "--config.train.batch_size=32",
  "--config.eval.batch_size=32",
  "--steps=2",
  "--warmup=1",
]


def _has_torch():
  try:
    import torch  # noqa: F401

    return True
  except ImportError:
    return False


def test_benchmark_scripts_report_every_figure(tmp_path):
  """benchmarks/scaling.py runs benchmarks/throughput.py once per device count: one run checks both."""
  out = tmp_path / "reports.json"
  command = [sys.executable, "benchmarks/scaling.py", "--devices", "1,2", "--json", str(out), "--", "--config", *SMOKE]
  if _has_torch():
    command.append("--torch")
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
  assert [row.split("|")[1].strip() for row in rows] == ["1", "2"]
  assert "data 2" in rows[1] and "1.00x" in rows[0]
  one, two = json.loads(out.read_text())
  assert (one["devices"], two["devices"]) == (1, 2)
  for key in (
    "compile_seconds",
    "flops_per_step_per_device",
    "xla_step_memory_bytes",
    "train_examples_per_second",
    "loop_examples_per_second",
    "input_wait_ms",
    "compute_ms",
    "eval_examples_per_second",
    "input_pipeline_examples_per_second",
    "host_peak_rss_bytes",
    "grain_loop_examples_per_second",
    "device_loop_examples_per_second",
    "grain_input_wait_share",
    "device_over_grain",
  ):
    assert one[key] > 0 and two[key] > 0, key
  assert one["input_wait_ms"] + one["compute_ms"] == pytest.approx(one["loop_step_ms"])
  assert "mfu" not in one  # no peak figure for a CPU
  if _has_torch():
    assert one["torch_parameters"] == one["parameters"] and one["emojax_over_torch"] > 0


@pytest.mark.skipif(not _has_torch(), reason="torch is the benchmark extra: pip install -e .[benchmark]")
@pytest.mark.parametrize("name", ["deep_cnn", "conformer", "text"])
def test_torch_reference_has_the_flax_models_parameters(name):
  sys.path.insert(0, str(REPO / "benchmarks"))
  import torch_reference

  from emojax.models import get_model

  if name == "deep_cnn":
    config = tiny_config(**{"model.width": 0.25})
    batch = {"image": np.zeros((2, 48, 48, 1), np.float32), "label": np.zeros(2, np.int32)}
  elif name == "conformer":
    from configs.speech import get_config

    config = get_config("model=conformer")
    batch = {
      "features": np.zeros((2, 37, 64), np.float32),
      "num_frames": np.array([37, 20]),
      "label": np.zeros(2, np.int32),
    }
  else:  # the MiniLM architecture shrunk as runlocal shrinks it
    from configs.text import get_config

    config = get_config("runlocal")
    batch = {"input_ids": np.ones((2, 16), np.int32), "attention_mask": np.ones((2, 16), np.int32)}
  model = get_model(config.model, 8)
  params = model.init({"params": jax.random.key(0)}, batch)["params"]
  reference = torch_reference.build(config, batch, 8)
  assert torch_reference.parameter_count(reference) == sum(x.size for x in jax.tree.leaves(params))
  with torch_reference.torch.no_grad():
    outputs = reference.eval()(*torch_reference.inputs(config, batch))
  logits = outputs[0] if isinstance(outputs, tuple) else outputs
  assert tuple(logits.shape) == (2, 8)


def test_inference_benchmark_reports_latency_and_throughput(tmp_path):
  """benchmarks/inference.py end to end on the face models (random weights: the same compute as trained ones)."""
  out = tmp_path / "inference.json"
  command = [sys.executable, "benchmarks/inference.py", "--only", "face", "--iterations", "3", "--json", str(out)]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = json.loads(out.read_text())["face"]
  assert [row["model"].split(" ")[0] for row in rows] == ["face.residual_attention_cnn", "face.deep_cnn"]
  for row in rows:
    for key in ("model_p50_ms", "model_p95_ms", "photo_p50_ms", "photo_p95_ms", "model_batch32_per_second"):
      assert row[key] > 0, key
    assert row["model_p50_ms"] <= row["model_p95_ms"] and row["model_p50_ms"] < row["photo_p50_ms"]
  assert "| face.deep_cnn width 0.5 | 640x480 photo -> labels" in result.stdout
