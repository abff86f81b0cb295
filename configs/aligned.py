"""Fusion on truly aligned data (emojax/data/aligned.py; results and commands in docs/aligned_fusion.md).

RAVDESS-AV: the face (OpenFace action units) and the voice of the same recording, 8 classes (or labels=ekman7),
actors 17-20 held out. CMU-MOSI: the transcript (all-MiniLM-L6-v2), text, audio and video features of the same
utterance, binary sentiment, 20% of the videos held out whole.

  --config configs/aligned.py:set=ravdess_av                      GATFusion (full graph) over the face (action units
                                                                  through an MLP trained end to end) and the voice
                                                                  (the Conformer run's export: frozen)
  --config configs/aligned.py:set=ravdess_av,method=concat        also confidence, mean; graph=self|edges:face>speech;
                                                                  weighting=gate|adaptive
  --config configs/aligned.py:set=ravdess_av,modalities=face      one modality alone (method=mean: the encoder's own
                                                                  prediction, its baseline)
  --config configs/aligned.py:set=ravdess_av,encoders=finetune    the Conformer from raw audio features inside the
                                                                  model, fine-tuned end to end (encoders=frozen: frozen)
  --config configs/aligned.py:set=mosi,modalities=transcript+audio+video
  --config configs/aligned.py:set=mosi,method=context,edges=cross+time,window=2    utterance context: a graph per video
  --config configs/aligned.py:set=mosi,encoder=transcript         the transcript encoder run (MiniLM fine-tuned on
                                                                  MOSI's training videos; `frozen`: a linear probe)
  --config configs/aligned.py:set=ravdess_av,encoder=face         any modality's encoder alone, as a plain run
  ...,runlocal                                                    a few steps on the real files

The runs behind exported modalities (speech=<run>, transcript=<run>) are trained first (docs/aligned_fusion.md):
  python -m emojax.main --config configs/speech.py:model=conformer --workdir runs/aligned/ravdess8_conformer ...
  python -m emojax.main --config configs/aligned.py:set=mosi,encoder=transcript --workdir runs/aligned/mosi_transcript
and exported (`--mode=export`). Nothing is chosen on the validation split: a run is scored at its final step
(`config.train.eval_every_steps` beyond the last step), and `--mode=robustness` scores every subset of modalities.
"""

import json
from pathlib import Path

import ml_collections

from emojax.config_utils import add_parallelism, add_training, data_dir, fusion_head, parse_arg
from emojax.data.text import default_text_encoder_path

SETS = {
  "ravdess_av": dict(root="ravdess_av", modalities="face+speech"),
  "mosi": dict(root="cmu_mosi", modalities="transcript+audio"),
}
EXPORTED = {"ravdess_av": ("speech",), "mosi": ("transcript",)}  # modalities whose encoder is a separate run
RUNS = dict(speech="runs/aligned/ravdess8_conformer", transcript="runs/aligned/mosi_transcript")
FINAL_STEP_ONLY = 10**9  # eval_every_steps: validation is scored once, at the end, so no checkpoint is chosen on it


def get_config(arg=None):
  arg = parse_arg(
    arg,
    set="ravdess_av",
    method="gat",
    graph="full",
    weighting="none",
    modalities="",
    labels="native",
    encoders="export",
    edges="cross+time",
    window=2,
    causal=False,
    encoder="",
    frozen=False,
    runlocal=False,
    **RUNS,
  )
  if arg["set"] not in SETS:
    raise ValueError(f"set={arg['set']!r}; choose one of {sorted(SETS)}.")
  if arg["encoders"] not in ("export", "frozen", "finetune"):
    raise ValueError(
      f"encoders={arg['encoders']!r}; choose 'export' (a run's exported outputs), 'frozen' (the run's "
      "encoder on raw inputs, frozen) or 'finetune' (trained end to end with the fusion head)."
    )
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = data_config(arg)
  if arg["encoder"]:
    encoder_run(config, arg)
  else:
    fusion_run(config, arg)
  add_parallelism(config)
  if arg["runlocal"]:
    config.train.num_steps = 12
    config.train.batch_size = 32
    config.train.log_every_steps = 4
    config.checkpoint.every_steps = 6
  return config


def data_config(arg) -> ml_collections.ConfigDict:
  data = ml_collections.ConfigDict()
  data.name = ("" if arg["encoder"] else "multimodal_") + arg["set"]
  data.root = data_dir(SETS[arg["set"]]["root"])
  data.eval_split = "validation"
  if arg["set"] == "ravdess_av":
    data.labels = arg["labels"]  # "native" (8 classes) or "ekman7"
    data.calm = "neutral"  # under ekman7: "neutral" (merge) or "drop"
    data.num_folds = 5  # actors 01-20 in 5 folds of 4; fold 4 = actors 17-20 held out
    data.fold = 4
    data.validation_speakers = ()  # overrides the fold, e.g. ("01", "02")
    data.speakers = ()  # read only these actors; () = all (01-20)
  else:
    data.validation_fraction = 0.2  # of the 62 videos, held out whole
    data.split_seed = 0
    data.validation_videos = ()  # overrides the fraction
    data.tokenizer = default_text_encoder_path()
    data.max_length = 128  # the longest transcript has 114 words
    data.token_widths = (32, 64, 128)
    data.context = False  # each example carries its whole video (method=context)
    data.max_utterances = 0  # > 0: cut longer videos into pieces of this many utterances
  data.read_threads = 2
  data.prefetch = 4
  data.worker_count = 0
  data.augment = ml_collections.ConfigDict(dict(enabled=not arg["encoder"], modality_dropout=0.2))
  return data


# The feature-vector encoders' hidden layers, every modality alike (`hidden=()`: a linear encoder, the standardised
# vector its embedding; docs/aligned_fusion.md compares the two on the action units).
HIDDEN = (128,)


def feature_mlp(modality: str) -> dict:
  return dict(name="features.mlp", hidden=HIDDEN, dropout=0.3)


def run_config(run: str, what: str) -> dict:
  path = Path(run).expanduser() / "config.json"
  if not path.is_file():
    raise FileNotFoundError(
      f"No {path}: train the {what} encoder run first (docs/aligned_fusion.md), or name another with {what}=<workdir>."
    )
  return json.loads(path.read_text())


def fusion_run(config, arg) -> None:
  """A fusion model over the set's modalities (or one of them alone)."""
  modalities = tuple(filter(None, (arg["modalities"] or SETS[arg["set"]]["modalities"]).split("+")))
  data, exported = config.data, EXPORTED[arg["set"]]
  data.modalities = modalities
  data.exports = ml_collections.ConfigDict({m: "" for m in modalities})
  encoders, checkpoints, frozen, scales = {}, {}, [], {}
  for m in modalities:
    encoders[m], checkpoints[m], scales[m] = (feature_mlp(m) if m not in exported else None), "", 1.0
    if m not in exported:
      continue
    run = arg[m]
    if arg["encoders"] == "export":
      data.exports[m] = run
      encoders[m] = dict(name="features.exported")
      continue
    run_json = run_config(run, m)  # the run's own encoder, on the raw inputs it was trained on
    encoders[m], checkpoints[m], scales[m] = run_json["model"], run, 0.1
    if m == "speech":
      data.speech = ml_collections.ConfigDict(run_json["data"])
    else:
      data.tokenizer, data.max_length = run_json["data"]["tokenizer"], run_json["data"]["max_length"]
    if arg["encoders"] == "frozen":
      frozen.append(m)
  if arg["method"] == "context":
    if arg["set"] != "mosi":
      raise ValueError("method=context needs utterances in videos: set=mosi.")
    data.context = True
    config.model = ml_collections.ConfigDict(
      dict(
        name="fusion.context_gat",
        modalities=modalities,
        encoders=encoders,
        graph=arg["graph"],
        window=arg["window"],
        edges=arg["edges"],
        causal=arg["causal"],
        features=128,
        num_heads=4,
        num_layers=2,
        dropout=0.1,
      )
    )
  else:
    head = fusion_head(arg["method"], arg["graph"])
    del head.modalities  # the encoders' keys name the modalities
    if "feature_weighting" in head:
      head.feature_weighting = arg["weighting"]
    config.model = ml_collections.ConfigDict(
      dict(
        name="fusion.end_to_end",
        modalities=modalities,
        encoders=encoders,
        fusion=head,
        checkpoints=checkpoints,
        freeze_encoders=tuple(frozen),
        encoder_learning_rate_scale=scales,
      )
    )
  add_training(
    config,
    train=dict(num_epochs=40.0 if arg["encoders"] != "finetune" else 5.0, eval_every_steps=FINAL_STEP_ONLY),
    checkpoint=dict(max_to_keep=1),
  )


def encoder_run(config, arg) -> None:
  """One modality's encoder alone, as a plain model on that modality's rows (what a fusion model can then read
  frozen, through the run's export)."""
  modality = arg["encoder"]
  config.data.modality = modality
  if modality == "transcript":
    config.data.bucket_by_length = True
    config.data.bucket_window_batches = 20
    config.model = ml_collections.ConfigDict(
      dict(
        name="text.classifier",
        pretrained=config.data.tokenizer,
        from_scratch=False,
        pooling="mean",
        dropout=0.1,
        sentiment_head=False,
        freeze_encoder=arg["frozen"],
        freeze_word_embeddings=True,
        dtype="float32",
      )
    )
    learning_rate, epochs = (3e-3, 4.0) if arg["frozen"] else (5e-5, 3.0)  # a linear probe, or fine-tuning
  else:
    config.model = ml_collections.ConfigDict(feature_mlp(modality))
    learning_rate, epochs = 1e-3, 40.0
  add_training(
    config,
    optimizer=dict(learning_rate=learning_rate, warmup_epochs=0.5),
    train=dict(batch_size=32, num_epochs=epochs, log_every_steps=20, eval_every_steps=FINAL_STEP_ONLY),
    checkpoint=dict(max_to_keep=1),
  )
