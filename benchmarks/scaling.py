"""Examples/s of one config on 1, 2, 4, ... devices (a data-parallel mesh over all of them, same global batch).

  python benchmarks/scaling.py --devices 1,2,4,8 -- --config configs/face_cnn.py --config.model.width=0.5

Each count runs benchmarks/throughput.py in its own process. On a CPU host the devices are simulated
(`--xla_force_host_platform_device_count`) and share the host's cores, so the table checks that the sharded
step runs and what the partitioning costs, not how a real cluster scales; on a GPU/TPU host use counts up to the
real device count (the first N devices are not selectable this way: set CUDA_VISIBLE_DEVICES per count).
Prints a markdown table; --json writes every run's full report.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(devices: int, throughput_args: list[str], simulate: bool) -> dict:
  env = dict(os.environ)
  if simulate:
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
  with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "report.json"
    result = subprocess.run(
      [sys.executable, str(HERE / "throughput.py"), *throughput_args, "--json", str(out)],
      env=env,
      capture_output=True,
      text=True,
    )
    if result.returncode != 0:
      raise RuntimeError(f"{devices} devices failed:\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--devices", default="1,2,4,8", help="Comma-separated device counts.")
  parser.add_argument("--real", action="store_true", help="Use the real devices (GPU/TPU), not simulated CPUs.")
  parser.add_argument("--json", default="", help="Write all reports to this file.")
  args, rest = parser.parse_known_args()
  throughput_args = [a for a in rest if a != "--"]
  reports = []
  for count in [int(c) for c in args.devices.split(",")]:
    reports.append(run(count, throughput_args, simulate=not args.real))
    r = reports[-1]
    print(f"{r['devices']} devices done: {r['train_examples_per_second']:.1f} examples/s", file=sys.stderr)
  base = reports[0]["train_examples_per_second"]
  r = reports[0]
  print(
    f"{r['model']} width={r['width']} batch={r['batch_size']} {r['dtype']} on {r['device_kind']} "
    f"({'simulated ' if not args.real else ''}devices)\n"
  )
  print(
    "| devices | mesh | train examples/s (model only) | vs 1 device | loop examples/s | input wait ms/step "
    "| compile s | XLA step memory per device |"
  )
  print("|---|---|---|---|---|---|---|---|")
  for r in reports:
    mesh = " x ".join(f"{axis} {size}" for axis, size in r["mesh"].items() if size > 1) or "1"
    print(
      f"| {r['devices']} | {mesh} | {r['train_examples_per_second']:.1f} | "
      f"{r['train_examples_per_second'] / base:.2f}x | {r['loop_examples_per_second']:.1f} | "
      f"{r['input_wait_ms']:.1f} | {r['compile_seconds']:.1f} | "
      f"{r.get('xla_step_memory_bytes', 0) / 2**20:.0f} MiB |"
    )
  if args.json:
    Path(args.json).write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
  main()
