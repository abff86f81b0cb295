"""The aligned sets' encoders trained end to end with the fusion head, or frozen from their own runs, one seed
each (the sweeps aligned_ravdess_av.py and aligned_mosi.py read the Conformer and MiniLM through their exports):

* RAVDESS-AV: the speech Conformer on raw audio features inside the model, restored from its run and fine-tuned
  at 0.1x the learning rate with the face MLP (from scratch) and the head, 5 epochs; and the face MLP frozen from
  a single-modality run (`face__seed=0` of aligned_ravdess_av.py) beside the exported Conformer.
* MOSI: all-MiniLM-L6-v2 on the transcripts inside the model, restored from its run and fine-tuned at 0.1x with
  the audio MLP and the head, 5 epochs.

  python launch/sweep.py launch/sweeps/aligned_end_to_end.py --root runs/aligned_end_to_end
  python -m emojax.results runs/aligned_end_to_end/* --robustness
"""

RAVDESS = "configs/aligned.py:set=ravdess_av,method=gat,graph=edges:face>speech"
MOSI = "configs/aligned.py:set=mosi,modalities=transcript+audio,method=gat,graph=full"


def get_sweep():
  runs = [
    {"config": f"{RAVDESS},encoders=finetune", "name": "ravdess_av_conformer_finetuned"},
    {
      "config": RAVDESS,
      "name": "ravdess_av_face_frozen_from_run",
      "config.model.checkpoints.face": "runs/aligned_ravdess_av/face__seed=0",
      "config.model.freeze_encoders": "('face',)",
    },
    {"config": f"{MOSI},encoders=finetune", "name": "mosi_minilm_finetuned"},
  ]
  return [{**run, "mode": "train+robustness"} for run in runs]
