"""Text emotion classifiers on GoEmotions: a pretrained encoder with emotion + sentiment heads.

--config configs/text.py                                 all-MiniLM-L6-v2, 28 labels, sentiment head beside
--config configs/text.py:labels=ekman                    Ekman-7 (multi-label), or labels=sentiment
--config configs/text.py:lexicon                         + VADER and NRC lexicon features before the heads
--config configs/text.py --config.model.pretrained=/path/to/deberta-v3-base --config.data.tokenizer=/path/...
--config configs/text.py:runlocal                        a tiny encoder on 512 real rows: seconds
--config.train.focal_gamma=2  --config.train.class_weight_power=0  --config.train.sentiment_loss_weight=0
"""

import ml_collections

from emojax.config_utils import add_parallelism, add_speech_to_text, cache_dir, data_dir, parse_arg
from emojax.data.text import default_text_encoder_path

LABEL_SPACES = ("goemotions28", "ekman", "sentiment")


def get_config(arg=None):
  arg = parse_arg(arg, labels="goemotions28", lexicon=False, pretrained="", runlocal=False)
  if arg["labels"] not in LABEL_SPACES:
    raise ValueError(f"labels={arg['labels']!r}; choose one of {LABEL_SPACES}.")
  pretrained = arg["pretrained"] or default_text_encoder_path()
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "goemotions"
  config.data.root = data_dir("goemotions")
  config.data.label_space = arg["labels"]
  config.data.eval_split = "validation"  # dev.tsv
  config.data.tfds_dir = ""  # read rows prepared by `python -m emojax.data.tfds_builders` instead
  config.data.tokenizer = pretrained  # a Hugging Face folder with the encoder's tokenizer
  config.data.max_length = 128  # GoEmotions comments are <= 30 words; few reach 64 tokens
  config.data.token_widths = (32, 64, 128)  # batches are cut to the smallest width holding their longest row
  config.data.bucket_by_length = True  # training batches of similar lengths (windowed, reshuffled)
  config.data.bucket_window_batches = 50
  config.data.lexicon = arg["lexicon"]  # VADER + NRC features beside the pooled encoder output
  config.data.cache_dir = cache_dir("text")
  config.data.max_examples = 0  # >0: a seeded sample of rows per split (smoke runs)
  config.data.read_threads = 2
  config.data.prefetch = 4
  config.data.worker_count = 0
  config.data.augment = ml_collections.ConfigDict(dict(enabled=False))

  config.model = ml_collections.ConfigDict()
  config.model.name = "text.classifier"
  config.model.pretrained = pretrained  # architecture (config.json) and weights
  config.model.from_scratch = False
  config.model.encoder_overrides = ml_collections.ConfigDict()
  config.model.pooling = "mean"  # all-MiniLM-L6-v2 was trained for mean pooling
  config.model.dropout = 0.1
  config.model.sentiment_head = True
  config.model.freeze_encoder = False
  config.model.freeze_word_embeddings = False  # True: ~2x faster steps on CPU (no 30522 x 384 gradient)
  config.model.dtype = "float32"

  config.optimizer = ml_collections.ConfigDict(
    dict(
      name="adamw",
      learning_rate=1e-4,
      b1=0.9,
      b2=0.999,
      momentum=0.9,
      weight_decay=1e-2,
      warmup_epochs=0.5,
      final_lr_fraction=0.0,
      grad_clip_norm=1.0,
    )
  )
  config.train = ml_collections.ConfigDict(
    dict(
      batch_size=32,
      num_epochs=5.0,
      num_steps=0,
      label_smoothing=0.0,
      confidence_weight=0.0,
      emotion_loss_weight=1.0,
      sentiment_loss_weight=0.3,
      class_weight_power=0.5,
      max_class_weight=30.0,  # positive-label weights (negatives/positives)^power
      focal_gamma=0.0,  # > 0: sigmoid focal loss instead of cross-entropy
      log_every_steps=100,
      eval_every_steps=0,
      early_stopping_patience=0,
      tensorboard=True,
    )
  )
  config.eval = ml_collections.ConfigDict(dict(batch_size=128))
  config.checkpoint = ml_collections.ConfigDict(
    dict(every_steps=1000, max_to_keep=2, best_metric="macro_f1", best_mode="max", async_save=True)
  )
  add_parallelism(config)
  add_speech_to_text(config)  # a recording's words, for the text branch

  if arg["runlocal"]:
    config.data.max_examples = 512
    config.data.max_length = 64
    config.model.from_scratch = True
    config.model.encoder_overrides = ml_collections.ConfigDict(
      dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    )
    config.optimizer.learning_rate = 1e-3
    config.train.num_steps = 20
    config.train.log_every_steps = 5
    config.checkpoint.every_steps = 10
  return config
