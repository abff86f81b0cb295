"""Fusion ablation: every method, GATFusion under every graph, three seeds.

  python launch/sweep.py launch/sweeps/fusion_ablation.py --root runs/fusion_ablation
Add the exported encoders with e.g. `"config.data.sources.face": "runs/fer_deep_cnn/export"` to each run
(and `:data=exports` in its config) to sweep over real modalities instead of the synthetic ones.
"""

from sweep import product

GRAPHS = ("full", "star:face", "star:speech", "star:text", "chain", "self")


def get_sweep():
  seeds = {"config.seed": [0, 1, 2]}
  runs = product(config=[f"configs/fusion.py:method=gat,graph={g}" for g in GRAPHS], **seeds)
  runs += product(config=[f"configs/fusion.py:method={m}" for m in ("concat", "confidence", "mean")], **seeds)
  return runs
