"""Fusion on CMU-MOSI (the same utterance's transcript, voice and face; binary sentiment; 12 of the 62 training
videos held out whole): each modality alone, every fusion method over the transcript (all-MiniLM-L6-v2 fine-tuned
on the training videos, frozen here through its run's export) and the openSMILE audio, with and without utterance
context (the per-video graph: `method=context`, cross-modal and time edges, or one kind alone); three seeds
(directed graphs, modality weighting, causal and narrower context: one seed).
Then the release's own text and video vectors, which separate the classes of held-out training videos almost
perfectly (they were trained on these labels: docs/aligned_fusion.md), one seed, to show what they do to fusion.

Needs the transcript runs' exports (docs/aligned_fusion.md), fine-tuned and frozen (a linear probe):
  python -m emojax.main --config configs/aligned.py:set=mosi,encoder=transcript --workdir runs/aligned/mosi_transcript
  python -m emojax.main --config configs/aligned.py:set=mosi,encoder=transcript,frozen \
      --workdir runs/aligned/mosi_transcript_frozen
  and `--mode=export` with the same arguments for each.
Then:
  python launch/sweep.py launch/sweeps/aligned_mosi.py --root runs/aligned_mosi
  python -m emojax.results runs/aligned_mosi/{transcript,audio,gat,concat,confidence,mean,context}* --over-seeds \
      --bootstrap --metric accuracy
  python -m emojax.results runs/aligned_mosi/{text,video,audio,released}* --over-seeds --bootstrap --metric accuracy
"""

from aligned_ravdess_av import runs

SET = "configs/aligned.py:set=mosi"
PAIR = "modalities=transcript+audio"
METHODS = {
  "audio": "modalities=audio,method=mean",
  "gat_full": f"{PAIR},method=gat,graph=full",
  "gat_self": f"{PAIR},method=gat,graph=self",
  "concat": f"{PAIR},method=concat",
  "confidence": f"{PAIR},method=confidence",
  "mean": f"{PAIR},method=mean",
  "context_cross+time": f"{PAIR},method=context,edges=cross+time",
  "context_cross": f"{PAIR},method=context,edges=cross",
  "context_time": f"{PAIR},method=context,edges=time",
}
VARIANTS = {  # one seed each
  "gat_transcript_to_audio": f"{PAIR},method=gat,graph=edges:transcript>audio",
  "gat_audio_to_transcript": f"{PAIR},method=gat,graph=edges:audio>transcript",
  "gat_full_gate": f"{PAIR},method=gat,graph=full,weighting=gate",
  "gat_full_adaptive": f"{PAIR},method=gat,graph=full,weighting=adaptive",
  "concat_gate": f"{PAIR},method=concat,weighting=gate",
  "concat_adaptive": f"{PAIR},method=concat,weighting=adaptive",
  "context_cross+time_causal": f"{PAIR},method=context,edges=cross+time,causal",
  "context_cross+time_window1": f"{PAIR},method=context,edges=cross+time,window=1",
}
FROZEN_ONLY = {
  "transcript": "modalities=transcript,method=mean",  # MiniLM fine-tuned on the training videos
  "transcript_frozen": "modalities=transcript,method=mean,transcript=runs/aligned/mosi_transcript_frozen",
}
RELEASED = "modalities=text+audio+video"
LEAKED = {
  "text": "modalities=text,method=mean",
  "video": "modalities=video,method=mean",
  "released_gat_full": f"{RELEASED},method=gat,graph=full",
  "released_concat": f"{RELEASED},method=concat",
  "released_mean": f"{RELEASED},method=mean",
  "released_context_cross+time": f"{RELEASED},method=context,edges=cross+time",
}


def get_sweep():
  return runs(SET, METHODS, FROZEN_ONLY) + runs(SET, {**VARIANTS, **LEAKED}, {}, seeds=(0,))
