"""Helpers for configs: `get_config(arg)` strings like "model=residual_attention,data=fer2013,runlocal"."""

import os


def parse_arg(arg: str | None, **defaults):
  """Parses "k=v,flag" into a dict over `defaults`, typed like the defaults (big_vision style).

  A bare word sets a boolean default to True; an unknown key is an error naming the known ones.
  """
  values = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in defaults:
      raise ValueError(f"Unknown config argument {key!r}; known: {sorted(defaults)}.")
    default = defaults[key]
    if isinstance(default, bool):
      values[key] = value.lower() in ("", "1", "true", "yes")
    elif default is None:
      values[key] = value
    else:
      values[key] = type(default)(value)
  return values


def data_dir(*parts: str) -> str:
  """`$EMOJAX_DATA_DIR/<parts>`, by default `../shared/data` beside the checkout."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  root = os.environ.get("EMOJAX_DATA_DIR", os.path.join(os.path.dirname(repo), "shared", "data"))
  return os.path.join(root, *parts)


def cache_dir(*parts: str) -> str:
  """`$EMOJAX_CACHE_DIR/<parts>`, by default `.cache/` in the checkout (git-ignored)."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return os.path.join(os.environ.get("EMOJAX_CACHE_DIR", os.path.join(repo, ".cache")), *parts)


# The blocks every config carries, with the values most of them use; each config passes only what differs.
OPTIMIZER = dict(
  name="adamw",  # "adamw", or "sgd" (Nesterov, momentum 0.9 unless `momentum` is given)
  learning_rate=1e-3,
  b1=0.9,
  b2=0.999,
  weight_decay=1e-2,  # decoupled, on kernels only
  warmup_epochs=1.0,
  final_lr_fraction=0.01,  # the cosine schedule ends at learning_rate * this
  grad_clip_norm=1.0,  # 0: no clipping
)
TRAIN = dict(
  batch_size=64,
  num_epochs=20.0,
  num_steps=0,  # > 0 overrides num_epochs
  log_every_steps=50,
  eval_every_steps=0,  # 0: once per epoch
  early_stopping_patience=0,  # evaluations without improvement before stopping; 0: never stop early
  tensorboard=True,
)
# The loss of single-label tasks (`losses.classification_loss`) and of multi-label ones (`losses.multilabel_loss`).
SINGLE_LABEL_LOSS = dict(
  label_smoothing=0.0,
  confidence_weight=0.0,  # confidence-head models only
  auxiliary_weight=0.0,  # per-frame (CNNBiLSTM) or per-modality (fusion auxiliary heads) classifiers
)
MULTI_LABEL_LOSS = dict(
  emotion_loss_weight=1.0,
  sentiment_loss_weight=0.3,  # the sentiment head, when the model has one
  class_weight_power=0.5,  # positive-label weights (negatives/positives)^power ...
  max_class_weight=30.0,  # ... capped here
  focal_gamma=0.0,  # > 0: sigmoid focal loss instead of cross-entropy
)
EVAL = dict(batch_size=128)
OPTIONAL = {"optimizer": {"momentum"}, "eval": {"tta_flip"}}  # fields a config may add to the defaults
CHECKPOINT = dict(every_steps=500, max_to_keep=2, best_metric="balanced_accuracy", best_mode="max", async_save=True)


def add_training(config, *, multi_label: bool = False, optimizer=None, train=None, eval=None, checkpoint=None) -> None:
  """`config.optimizer`, `config.train` (with the single- or multi-label loss fields), `config.eval` and
  `config.checkpoint`: the defaults above updated by the config's own values. A value for a field the defaults do
  not have is an error (a misspelt field would otherwise be silently ignored)."""
  import ml_collections

  blocks = {
    "optimizer": (OPTIMIZER, optimizer),
    "train": ({**TRAIN, **(MULTI_LABEL_LOSS if multi_label else SINGLE_LABEL_LOSS)}, train),
    "eval": (EVAL, eval),
    "checkpoint": (CHECKPOINT, checkpoint),
  }
  for name, (defaults, given) in blocks.items():
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults) - OPTIONAL.get(name, set()))
    if unknown:
      raise ValueError(f"config.{name} has no field(s) {unknown}; known: {sorted(defaults)}.")
    config[name] = ml_collections.ConfigDict({**defaults, **given})


def add_speech_to_text(config) -> None:
  """`config.speech_to_text`: how a recording's words are transcribed for the text branch (`emojax.speech_to_text`,
  Whisper base through faster-whisper), kept with a run and its bundle."""
  import ml_collections

  config.speech_to_text = ml_collections.ConfigDict(
    dict(
      language="en",  # "" = detected by Whisper (one more decoder pass)
      beam_size=5,  # Whisper's own default; 1 = greedy, faster on CPU
      compute_type="int8",  # CTranslate2 on CPU: "int8" (fast) or "float32"
      cpu_threads=1,  # 0 = CTranslate2 picks (all cores)
      word_timestamps=True,  # word start/end from the cross-attention alignment heads
    )
  )


def add_data_quality(config) -> None:
  """The data-quality switches every experiment shares (`emojax.data.quality`; what `emojax explore` finds)."""
  config.data.drop_duplicates = "none"  # "from_train" or "from_validation": exact train<->evaluation copies
  config.data.class_balance = "none"  # "resample" (oversample to the largest class) or "reweight" (loss weights)
  config.data.class_balance_seed = 0  # the fixed draw of class_balance="resample"


def add_parallelism(config) -> None:
  """The mesh, sharding and multi-host fields every experiment shares (data parallel by default), and, as every
  config calls this, the data-quality switches (`add_data_quality`)."""
  import ml_collections

  add_data_quality(config)
  # Mesh axes (data, fsdp, model); -1 = all remaining devices.
  config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, model=1))
  config.sharding = ml_collections.ConfigDict(
    dict(
      strategy="replicate",  # or "fsdp": shard each large parameter's largest divisible axis
      fsdp_min_size=2**14,  # parameters smaller than this stay replicated
      rules=[],
    )
  )  # [(regex over "params/Conv_0/kernel", partition spec tuple), ...] first match wins
  config.distributed = False  # True on multi-host: jax.distributed.initialize()
  config.coordinator_address = ""  # "host:port" of process 0; "" = detected (TPU VM, SLURM, MPI)
  config.num_processes = -1  # -1 = detected
  config.process_id = -1  # -1 = detected
  config.xla_cpu_ynnpack = False  # XLA:CPU's YNNPACK fusions; off = Eigen, faster here (sharding.configure_xla_cpu)
  config.compilation_cache_dir = cache_dir("jax_compilation")  # JAX's persistent compilation cache; "" = off
  # Each step's global batch (train.batch_size) in this many sequential microbatches, gradients summed: the
  # optimizer sees the same batch with 1/k of the activation memory (batch-norm statistics come per microbatch).
  config.train.grad_accum_steps = 1
  # Steps per host dispatch (a lax.scan over k steps; metrics, evaluation and checkpoints at its boundaries).
  # 0 = automatic: 1 on CPU (XLA:CPU's in-loop convolution gradients are slow), 8 on GPU/TPU.
  config.train.steps_per_dispatch = 0
  # Input pipeline: "device" puts each split on the devices once and gathers and augments batches there
  # (emojax/data/device_pipeline.py); "grain" decodes and augments on the host; "auto" = device where it applies.
  config.data.pipeline = "auto"
  config.data.device_max_bytes = 4 * 2**30  # a split above this per device stays on the host under "auto"


FUSION_METHODS = {
  "gat": "fusion.gat",
  "concat": "fusion.concat",
  "confidence": "fusion.confidence_weighted",
  "mean": "fusion.mean",
}


def fusion_head(method: str, graph: str = "full"):
  """config.model of a fusion method (configs/fusion.py; the head of configs/multimodal.py)."""
  import ml_collections

  if method not in FUSION_METHODS:
    raise ValueError(f"method={method!r}; choose one of {sorted(FUSION_METHODS)}.")
  model = ml_collections.ConfigDict()
  model.name = FUSION_METHODS[method]
  model.modalities = ("face", "speech", "text")
  if method == "gat":
    model.graph = graph
    model.num_heads = 4
    model.num_layers = 2
  if method in ("gat", "concat"):
    model.features = 128
    model.feature_weighting = "none"  # or "gate", "adaptive"
    model.auxiliary_heads = False  # True with train.auxiliary_weight > 0: per-modality losses
    model.dropout = 0.1 if method == "gat" else 0.3
  if method == "confidence":
    model.confidence = "learned"  # or "entropy", "max_probability", "heads"
  return model
