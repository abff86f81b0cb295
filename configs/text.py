"""Text emotion classifiers on GoEmotions: a pretrained encoder with emotion + sentiment heads.

--config configs/text.py                                 all-MiniLM-L6-v2, 28 labels, sentiment head beside
--config configs/text.py:labels=ekman                    Ekman-7 (multi-label), or labels=sentiment
--config configs/text.py:lexicon                         + VADER and NRC lexicon features before the heads
--config configs/text.py --config.model.pretrained=/path/to/deberta-v3-base --config.data.tokenizer=/path/...
--config configs/text.py:runlocal                        a tiny encoder on 512 real rows: seconds
--config.train.focal_gamma=2  --config.train.class_weight_power=0  --config.train.sentiment_loss_weight=0
"""

import ml_collections

from emojax.config_utils import add_parallelism, add_speech_to_text, add_training, cache_dir, data_dir, parse_arg
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

  add_training(
    config,
    multi_label=True,
    optimizer=dict(learning_rate=1e-4, warmup_epochs=0.5, final_lr_fraction=0.0),
    train=dict(batch_size=32, num_epochs=5.0, log_every_steps=100),
    checkpoint=dict(every_steps=1000, best_metric="macro_f1"),
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
