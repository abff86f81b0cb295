"""Face expression classifiers on FER2013 or the synthetic default.

  --config configs/face_cnn.py                                     DeepCNN on FER2013
  --config configs/face_cnn.py:model=residual_attention           ResidualAttentionCNN on FER2013
  --config configs/face_cnn.py:data=synthetic,runlocal            the seconds-long demo
  --config configs/face_cnn.py:model=cnn_bilstm                   CNNBiLSTM on FER2013 (feature-map rows as frames)
  --config configs/face_cnn.py:model=cnn_bilstm,data=synthetic_clips,runlocal   ... on the synthetic clips
  --config configs/face_cnn.py:model=cnn_bilstm,data=clips --config.data.root=/data/ckplus   ... on real clips
  --config configs/face_cnn.py:model=landmark_gat --config.data.landmark_cache=.cache/landmarks   landmarks only
  --config.model.width=0.5 --config.train.num_epochs=20           any field from the command line

Switches of DeepCNN and ResidualAttentionCNN: model.swin (Swin refinement of the 12x12 map), model.landmark_graph
(a landmark GAT beside the CNN; needs data.landmark_cache), model.adaptive_weighting (learned per-input weights
over the feature groups, reported by evaluation). data.landmark_points=ibug68 is the 68-point subset mode.
"""

import ml_collections

from emojax.config_utils import add_parallelism, add_training, cache_dir, data_dir, parse_arg

MODELS = {
  "deep_cnn": "face.deep_cnn",
  "residual_attention": "face.residual_attention_cnn",
  "cnn_bilstm": "face.cnn_bilstm",
  "landmark_gat": "face.landmark_gat",
}
DATA = ("fer2013", "synthetic", "clips", "synthetic_clips")


def get_config(arg=None):
  arg = parse_arg(arg, model="deep_cnn", data="fer2013", runlocal=False)
  if arg["model"] not in MODELS:
    raise ValueError(f"model={arg['model']!r}; choose one of {sorted(MODELS)}.")
  if arg["data"] not in DATA:
    raise ValueError(f"data={arg['data']!r}; choose one of {DATA}.")
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = arg["data"]
  config.data.root = data_dir("fer2013")  # for data=clips: the clip folder (class folders or CK+ as released)
  config.data.eval_split = "validation"
  config.data.num_train_examples = 6000  # synthetic only
  config.data.num_eval_examples = 1000  # synthetic only
  config.data.seed = 0  # synthetic only
  config.data.read_threads = 2
  config.data.prefetch = 8
  config.data.worker_count = 0  # >0: grain worker processes (spawned) instead of threads
  # Clips (data=clips or synthetic_clips): frames per clip, face crop, and CK+'s subject folds.
  config.data.clip_length = 8
  config.data.face_crop = "haar"  # "none", "center" or "haar" (OpenCV's face detector)
  config.data.num_folds = 5
  config.data.fold = 0
  # Landmarks (FER2013): the cache emojax.data.extract_landmarks wrote ("" = none), which points, which graph.
  config.data.landmark_cache = ""
  config.data.landmark_points = "facemesh"  # all 468, or "ibug68" (the 68-point subset)
  config.data.landmark_edges = "auto"  # "tessellation" (468 points only), "knn", or auto
  config.data.landmark_knn = 6
  config.data.augment = ml_collections.ConfigDict(
    dict(
      enabled=True,
      crop_padding=4,
      flip=True,
      rotation_degrees=10.0,
      contrast=0.2,
      brightness=0.1,
      random_erasing=0.0,  # probability of erasing a random rectangle (0.5 is usual; 0 keeps earlier runs exact)
      # Batch mixing on device (emojax.data.device_augment.mix_batch): Beta(alpha, alpha) weights, 0 = off;
      # with both > 0 each batch uses one of the two. The host (grain) augmentation ignores them.
      mixup_alpha=0.0,
      cutmix_alpha=0.0,
    )
  )

  config.model = ml_collections.ConfigDict()
  config.model.name = MODELS[arg["model"]]
  config.model.width = 1.0
  config.model.dtype = "float32"  # "bfloat16" for bf16 compute (params and BN stats stay float32)
  if arg["model"] == "deep_cnn":
    config.model.block_dropout = (0.25, 0.25, 0.4, 0.5)
    config.model.dense_dropout = 0.5
  else:
    config.model.dropout = 0.4
  if arg["model"] in ("deep_cnn", "residual_attention"):
    # Swin refinement (emojax/models/swin.py) of the CNN's 12x12 feature map, pooled beside the CNN's features.
    config.model.swin = False
    config.model.swin_features = 96
    config.model.swin_depths = (2, 2)
    config.model.swin_heads = (3, 6)
    config.model.swin_window = 6
    # A landmark graph (emojax/models/landmark_graph.py) reading the same map at each landmark.
    config.model.landmark_graph = False
    config.model.landmark_features = 64
    config.model.landmark_layers = 2
    # Learned per-input weights over the feature groups (cnn, swin, landmarks) instead of concatenation.
    config.model.adaptive_weighting = False
    config.model.adaptive_features = 128
  if arg["model"] == "cnn_bilstm":
    config.model.dropout = 0.3
    config.model.lstm_features = 128
    config.model.frame_gate = "confidence"  # "learned" or "none"
  if arg["model"] == "landmark_gat":
    del config.model.width
    config.model.dropout = 0.1
    config.model.features = 64
    config.model.num_layers = 3
    config.data.landmark_cache = cache_dir("landmarks")

  add_training(
    config,
    optimizer=dict(weight_decay=1e-4),
    train=dict(
      num_epochs=60.0,
      confidence_weight=0.1,  # confidence-head models only
      auxiliary_weight=0.5 if arg["model"] == "cnn_bilstm" else 0.0,  # per-frame classifiers (CNNBiLSTM)
      early_stopping_patience=10,
    ),
    eval=dict(batch_size=256, tta_flip=False),  # tta_flip: average with the mirror
    checkpoint=dict(max_to_keep=3, best_metric="accuracy"),
  )

  add_parallelism(config)

  if arg["data"] == "clips":
    config.data.root = ""  # no default clip corpus: --config.data.root=<folder>
  if arg["runlocal"]:
    config.data.num_train_examples = 2048
    config.data.num_eval_examples = 512
    if "width" in config.model:
      config.model.width = 0.25
    config.train.num_epochs = 12.0
    config.train.log_every_steps = 16
    config.train.early_stopping_patience = 0
    config.optimizer.warmup_epochs = 0.5
    config.checkpoint.every_steps = 64
    config.eval.batch_size = 128
    # At this width and budget dropout feeding batch norm (train/eval variance shift) costs the
    # synthetic task ~60 points of accuracy; the full configs keep the published rates.
    if arg["model"] == "deep_cnn":
      config.model.block_dropout = (0.0, 0.0, 0.0, 0.0)
      config.model.dense_dropout = 0.0
    else:
      config.model.dropout = 0.1
    if arg["data"] == "synthetic_clips":  # six frames per example: fewer examples and epochs
      config.data.num_train_examples = 768
      config.data.num_eval_examples = 256
      config.data.clip_length = 6
      config.train.num_epochs = 10.0
      config.data.augment.enabled = False  # at this budget augmentation costs 9 points (64.8% vs 73.4%)
  return config
