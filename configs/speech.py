"""Speech emotion classifiers on RAVDESS (default), TESS or CREMA-D.

--config configs/speech.py                                  SpeechCNNLSTM, RAVDESS 8 classes, actors 17-20 held out
--config configs/speech.py:model=conformer,labels=ekman7    Conformer, 7 Ekman classes (calm -> neutral)
--config configs/speech.py:model=wav2vec2 --config.model.wav2vec2_path=/path/to/wav2vec2-base
--config configs/speech.py:model=conformer,frontend=wav2vec2 --config.model.wav2vec2_path=...
--config configs/speech.py:data=tess --config.data.root=/data/TESS
--config configs/speech.py:model=whisper                    Whisper base encoder, frozen, layer-weighted statistics
--config configs/speech.py:model=whisper,finetune=2         ... its top 2 layers fine-tuned (window=30s: padded)
--config configs/speech.py:runlocal                         two actors, 20 steps: a smoke test in seconds
--config.data.fold=2  --config.data.validation_speakers='("01","02")'  --config.data.split_by=random
--config.data.augment.feature_copies=4                      pitch/stretch/noise/gain drawn 4 times per file, once,
                                                            into the feature cache; training picks among them
"""

import ml_collections

from emojax.config_utils import add_parallelism, add_speech_to_text, add_training, cache_dir, data_dir, parse_arg

MODELS = {
  "cnn_lstm": "speech.cnn_lstm",
  "conformer": "speech.conformer",
  "wav2vec2": "speech.wav2vec2",
  "whisper": "speech.whisper",
}
ROOTS = {"ravdess": "ravdess", "tess": "tess", "crema_d": "crema_d"}
FOLDS = {"ravdess": 5, "tess": 2, "crema_d": 5}


def get_config(arg=None):
  arg = parse_arg(
    arg,
    model="cnn_lstm",
    data="ravdess",
    labels="native",
    frontend="features",
    runlocal=False,
    finetune=0,
    window="clip",
  )
  if arg["model"] not in MODELS:
    raise ValueError(f"model={arg['model']!r}; choose one of {sorted(MODELS)}.")
  if arg["data"] not in ROOTS:
    raise ValueError(f"data={arg['data']!r}; choose one of {sorted(ROOTS)}.")
  if arg["frontend"] not in ("features", "wav2vec2") or (arg["frontend"] == "wav2vec2" and arg["model"] != "conformer"):
    raise ValueError(
      f"frontend={arg['frontend']!r} with model={arg['model']!r}: frontend applies to "
      "model=conformer only ('features' or 'wav2vec2'); model=wav2vec2 reads waveforms already."
    )
  if (arg["finetune"] or arg["window"] != "clip") and arg["model"] != "whisper" or arg["window"] not in ("clip", "30s"):
    raise ValueError(
      f"finetune={arg['finetune']}, window={arg['window']!r} with model={arg['model']!r}: both apply to "
      "model=whisper only (finetune = top layers trained, window = 'clip' or '30s')."
    )
  waveform = arg["model"] == "wav2vec2" or arg["frontend"] == "wav2vec2"
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = arg["data"]
  config.data.root = data_dir(ROOTS[arg["data"]])
  config.data.labels = arg["labels"]  # "native" (RAVDESS: 8 classes) or "ekman7"
  config.data.calm = "neutral"  # RAVDESS calm under ekman7: "neutral" (merge) or "drop"
  config.data.input = "waveform" if waveform else "features"
  config.data.eval_split = "validation"
  config.data.split_by = "speaker"  # "random" mixes speakers across splits: ask for it explicitly
  config.data.num_folds = FOLDS[arg["data"]]
  config.data.fold = FOLDS[arg["data"]] - 1  # RAVDESS: actors 17-20 of 01-20 are validation
  config.data.validation_speakers = ()  # overrides the fold, e.g. ("01", "02")
  config.data.speakers = ()  # read only these speakers (); () reads all
  config.data.validation_fraction = 0.2  # split_by="random" only
  config.data.split_seed = 0  # split_by="random" only
  config.data.cache_dir = cache_dir("features")  # "" turns the feature cache off
  config.data.feature_threads = 2
  config.data.read_threads = 2
  config.data.prefetch = 4
  config.data.worker_count = 0
  config.data.audio = ml_collections.ConfigDict(
    dict(
      sample_rate=16000, trim_top_db=30.0, min_seconds=0.5, max_seconds=3.0, silence_peak=1e-3, max_clipped_fraction=0.2
    )
  )
  config.data.features = ml_collections.ConfigDict(
    dict(
      kind="log_mel",
      n_fft=400,
      hop_length=160,
      n_mels=64,
      fmin=20.0,
      fmax=8000.0,
      n_mfcc=40,
      deltas=True,
      normalize="none",
      prosody=False,
      pitch_method="yin",
      pitch_fmin=65.0,
      pitch_fmax=500.0,
      pitch_frame_length=1024,
      egemaps=False,
    )
  )
  config.data.augment = ml_collections.ConfigDict(
    dict(
      enabled=True,
      probability=0.5,
      pitch_shift_semitones=2.0,
      time_stretch=0.1,
      add_noise=True,
      snr_db_low=15.0,
      snr_db_high=35.0,
      gain_db=6.0,
      time_masks=2,
      time_mask_frames=25,
      freq_masks=2,
      freq_mask_bins=8,
      # K > 0 (input="features"): the waveform transforms above are drawn K times per training file once, into the
      # feature cache, and training picks among those copies instead of re-featurising per example (RAVDESS:
      # 74 MB of memory and ~40 s of one-off preparation per unit of K). eGeMAPS functionals stay the clean
      # clip's. Copy k of a file is seeded by (feature_copies_seed, the file's content, k).
      feature_copies=0,
      feature_copies_seed=0,
    )
  )

  config.model = ml_collections.ConfigDict()
  config.model.name = MODELS[arg["model"]]
  config.model.dtype = "float32"
  if arg["model"] == "cnn_lstm":
    config.model.conv_features = (16, 32, 64)
    config.model.lstm_features = 128
    config.model.bidirectional = True
    config.model.dropout = 0.3
  elif arg["model"] == "conformer":
    config.model.frontend = arg["frontend"]
    config.model.model_dim = 96
    config.model.num_layers = 4
    config.model.num_heads = 4
    config.model.conv_kernel_size = 15
    config.model.subsampling_features = 32
    config.model.dropout = 0.1
  if waveform:
    # A Hugging Face wav2vec2 folder (config.json + safetensors or pytorch_model.bin). Without one the
    # encoder starts from random weights with the small architecture below (its config.json wins otherwise).
    config.model.wav2vec2_path = ""
    config.model.wav2vec2_config = ml_collections.ConfigDict(
      dict(
        conv_dim=(64,) * 7,
        hidden_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=256,
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=4,
      )
    )
    config.model.freeze_feature_encoder = True
    config.model.num_frozen_layers = -1 if arg["model"] == "conformer" else 0  # -1: all frozen
  if arg["model"] == "whisper":
    # The frozen Whisper base encoder runs once per clip in the reader (cached); the head learns from its per-layer
    # statistics. finetune=n also trains the encoder's top n layers (from cached frames below them).
    config.data.features.whisper = arg["window"]  # "clip" (positions cut to the clip) or "30s" (Whisper's window)
    config.data.features.whisper_top_layers = arg["finetune"]
    config.data.augment.enabled = False  # the cached encoder summaries describe the clean clip only
    config.model.whisper_path = ""  # "" = the installed Whisper base (python -m emojax.pretrained)
    config.model.trainable_layers = arg["finetune"]
    config.model.head_features = 256
    config.model.dropout = 0.2
    config.model.encoder_dropout = 0.1
    config.model.encoder_learning_rate_scale = 0.1
    config.model.frame_statistics = False  # True: mean/std of the frame features (log-mel, + prosody) joined too
  if arg["model"] == "wav2vec2":
    config.model.pooling = "layer_weighted"
    config.model.head_features = 256
    config.model.dropout = 0.1

  add_training(
    config,
    optimizer=dict(learning_rate=1e-3 if arg["model"] != "wav2vec2" else 5e-5, b2=0.98, warmup_epochs=3.0),
    train=dict(batch_size=32, num_epochs=60.0, label_smoothing=0.1, log_every_steps=30),
    eval=dict(batch_size=64),
    checkpoint=dict(every_steps=300),
  )
  add_parallelism(config)
  add_speech_to_text(config)

  if arg["runlocal"]:
    config.data.speakers = ("01", "02")
    config.data.validation_speakers = ("02",)
    config.data.augment.probability = 0.0  # SpecAugment only: no re-featurisation on the hot path
    config.train.num_steps = 20
    config.train.log_every_steps = 5
    config.checkpoint.every_steps = 10
    if arg["model"] == "conformer":
      config.model.model_dim, config.model.num_layers = 48, 2
  return config
