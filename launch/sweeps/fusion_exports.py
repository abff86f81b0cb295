"""Fusion of the three trained encoders' exports: every method, GATFusion under every graph, three seeds.

Export each encoder first (`--mode=export` in its run folder), then:
  python launch/sweep.py launch/sweeps/fusion_exports.py --root runs/fusion_exports
  python -m emojax.main --config configs/fusion.py:method=mean,data=exports <the SOURCES overrides> \
      --workdir runs/fusion_exports/method=mean --mode=robustness   # each modality alone on the same tuples
"""

from sweep import product

SOURCES = {
  "config.data.sources.face": "runs/fer_resattn_w050/export",
  "config.data.sources.speech": "runs/ravdess7_conformer_prosody_egemaps/export",
  "config.data.sources.text": "runs/goemotions28_minilm/export",
}
GRAPHS = ("full", "star:face", "star:speech", "star:text", "chain", "self")


def get_sweep():
  runs = product(
    config=[f"configs/fusion.py:method=gat,graph={g},data=exports" for g in GRAPHS], **{"config.seed": [0, 1, 2]}
  )
  runs += product(
    config=[f"configs/fusion.py:method={m},data=exports" for m in ("concat", "confidence")],
    **{"config.seed": [0, 1, 2]},
  )
  runs += product(config=["configs/fusion.py:method=mean,data=exports"], **{"config.seed": [0]})
  return [{**run, **SOURCES} for run in runs]
