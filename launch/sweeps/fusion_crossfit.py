"""Cross-fitted fusion of the three trained encoders' exports (emojax/crossfit.py): every method, GATFusion
under every graph, three seeds. The fusion models learn on held-out folds of the validation tuples and are
scored on the pooled out-of-fold predictions, with the encoders alone on the same tuples in each run's
robustness/report.md.

  python launch/sweep.py launch/sweeps/fusion_crossfit.py --root runs/fusion_crossfit [--shard=0/2]
  python -m emojax.results runs/fusion_crossfit/* --over-seeds --csv runs/fusion_crossfit/results.csv \
      --plot runs/fusion_crossfit/results.png
"""

from fusion_exports import GRAPHS, SOURCES
from sweep import product


def get_sweep():
  configs = [f"configs/fusion.py:method=gat,graph={g},data=exports,protocol=crossfit" for g in GRAPHS]
  configs += [f"configs/fusion.py:method={m},data=exports,protocol=crossfit" for m in ("concat", "confidence")]
  runs = product(config=configs, **{"config.seed": [0, 1, 2]})
  runs += product(config=["configs/fusion.py:method=mean,data=exports,protocol=crossfit"], **{"config.seed": [0]})
  return [{**run, **SOURCES, "mode": "crossfit"} for run in runs]
