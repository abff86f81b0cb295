"""Fusion on RAVDESS-AV (face action units + the voice of the same recording, 8 classes, actors 17-20 held out):
each modality alone, GATFusion under every graph of two modalities, ConcatFusion, ConfidenceWeightedFusion and
MeanEnsemble, three seeds each; gated / adaptive modality weighting, one seed each. Every run trains on the aligned
training recordings with modality dropout 0.2, is scored at its final step, then on every subset of modalities
(`--mode=robustness`, which also writes the per-example predictions the bootstrap compares).

Needs the speech run's export (docs/aligned_fusion.md):
  python -m emojax.main --config configs/speech.py:model=conformer --workdir runs/aligned/ravdess8_conformer \
      --config.train.num_epochs=30 --config.data.augment.probability=0.0
  python -m emojax.main --config configs/speech.py:model=conformer --workdir runs/aligned/ravdess8_conformer \
      --mode=export --checkpoint=latest
Then:
  python launch/sweep.py launch/sweeps/aligned_ravdess_av.py --root runs/aligned_ravdess_av
  python -m emojax.results runs/aligned_ravdess_av/* --over-seeds --bootstrap --metric balanced_accuracy
"""

SET = "configs/aligned.py:set=ravdess_av"
SEEDS = (0, 1, 2)
# name -> config arguments. With two modalities a star or a chain is the full graph; the directed graphs let
# one modality read the other without being read.
METHODS = {
  "face": "modalities=face,method=mean",
  "gat_full": "method=gat,graph=full",
  "gat_self": "method=gat,graph=self",
  "gat_face_to_speech": "method=gat,graph=edges:face>speech",
  "gat_speech_to_face": "method=gat,graph=edges:speech>face",
  "concat": "method=concat",
  "confidence": "method=confidence",
  "mean": "method=mean",
}
VARIANTS = {  # modality weighting before the head: one seed each
  "gat_full_gate": "method=gat,graph=full,weighting=gate",
  "gat_full_adaptive": "method=gat,graph=full,weighting=adaptive",
  "concat_gate": "method=concat,weighting=gate",
  "concat_adaptive": "method=concat,weighting=adaptive",
}
FROZEN_ONLY = {"speech": "modalities=speech,method=mean"}  # no trained parameter: one seed says it all


def runs(config: str, methods: dict, frozen_only: dict, seeds=SEEDS) -> list[dict]:
  """train+robustness runs named <method>__seed=<s>, seeds outermost so a partial sweep covers every method."""
  out = [
    {"config": f"{config},{args}", "name": f"{name}__seed=0", "config.seed": 0} for name, args in frozen_only.items()
  ]
  for seed in seeds:
    out += [
      {"config": f"{config},{args}", "name": f"{name}__seed={seed}", "config.seed": seed}
      for name, args in methods.items()
    ]
  return [{**run, "mode": "train+robustness"} for run in out]


def get_sweep():
  return runs(SET, METHODS, FROZEN_ONLY) + runs(SET, VARIANTS, {}, seeds=(0,))
