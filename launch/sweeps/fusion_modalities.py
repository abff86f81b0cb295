"""Which modalities the fusion model is trained with: every pair of the three encoders (the third absent from
every tuple, train and validation), GATFusion (full graph) and ConcatFusion, cross-fitted like
fusion_crossfit.py. The all-three runs are fusion_crossfit.py's.

  python launch/sweep.py launch/sweeps/fusion_modalities.py --root runs/fusion_modalities
"""

from fusion_exports import SOURCES

PAIRS = ("face+speech", "face+text", "speech+text")


def get_sweep():
  runs = []
  for pair in PAIRS:
    # A source left empty makes that modality absent from every tuple (a node that never exists).
    sources = {key: (path if key.rsplit(".", 1)[-1] in pair.split("+") else "") for key, path in SOURCES.items()}
    for method in ("gat", "concat"):
      runs.append(
        {
          "config": f"configs/fusion.py:method={method},data=exports,protocol=crossfit",
          **sources,
          "mode": "crossfit",
          "name": f"{method}_{pair}",
        }
      )
  return runs
