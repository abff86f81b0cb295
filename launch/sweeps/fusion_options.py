"""The fusion options beside the method: attention-gated and adaptive feature weighting, per-modality auxiliary
losses, and the fixed confidence measures of ConfidenceWeightedFusion; cross-fitted like fusion_crossfit.py
(whose runs are the "none" / learned baselines), seed 0.

  python launch/sweep.py launch/sweeps/fusion_options.py --root runs/fusion_options
"""

from fusion_exports import SOURCES

CROSSFIT = "data=exports,protocol=crossfit"


def get_sweep():
  runs = []
  for method, graph in (("gat", ",graph=full"), ("gat", ",graph=self"), ("concat", "")):
    for weighting in ("gate", "adaptive"):
      runs.append(
        {
          "config": f"configs/fusion.py:method={method}{graph},{CROSSFIT}",
          "name": f"{method}{graph}_{weighting}",
          "config.model.feature_weighting": weighting,
        }
      )
    runs.append(
      {
        "config": f"configs/fusion.py:method={method}{graph},{CROSSFIT}",
        "name": f"{method}{graph}_auxiliary",
        "config.model.auxiliary_heads": True,
        "config.train.auxiliary_weight": 0.3,
      }
    )
  for confidence in ("entropy", "max_probability"):
    runs.append(
      {
        "config": f"configs/fusion.py:method=confidence,{CROSSFIT}",
        "name": f"confidence_{confidence}",
        "config.model.confidence": confidence,
      }
    )
  return [{**run, **SOURCES, "mode": "crossfit"} for run in runs]
