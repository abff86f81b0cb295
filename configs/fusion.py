"""Fusion of face, speech and text encoders in Ekman-7 (see emojax/data/multimodal.py for the protocol).

--config configs/fusion.py                                  GATFusion, full graph, on the synthetic modalities
--config configs/fusion.py:method=concat                    the DNN fusion baseline (also: confidence, mean)
--config configs/fusion.py:graph=star:text                  star around text (also: full, chain, self,
                                                            edges:face-text;speech>text)
--config configs/fusion.py:data=exports --config.data.sources.face=runs/fer/export ...   real encoders' exports
--config configs/fusion.py:data=exports,protocol=crossfit ... --mode=crossfit     fusion fitted on held-out folds
--config.data.augment.modality_dropout=0.3  --config.model.feature_weighting=adaptive
"""

import ml_collections

from emojax.config_utils import add_parallelism, add_training, data_dir, fusion_head, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, method="gat", graph="full", data="synthetic", protocol="train", runlocal=False)
  if arg["data"] not in ("synthetic", "exports"):
    raise ValueError(f"data={arg['data']!r}; choose 'synthetic' or 'exports'.")
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "multimodal_synthetic" if arg["data"] == "synthetic" else "multimodal"
  config.data.eval_split = "validation"
  config.data.num_train_examples = 4000  # synthetic only
  config.data.num_eval_examples = 1000  # synthetic only
  config.data.seed = 0  # tuple pairing (exports) or the draw (synthetic)
  # exports: each modality's `--mode=export` folder; a modality left out is absent from every example.
  config.data.sources = ml_collections.ConfigDict(dict(face="", speech="", text=""))
  config.data.goemotions_root = data_dir("goemotions")  # its Ekman grouping maps a 28-label text export
  config.data.max_per_class_train = 2000  # tuples per class (0: as many as the largest modality has)
  config.data.max_per_class_eval = 0
  config.data.aligned = False  # rows of the exports are the same moments: no pairing
  # "train": fusion learns on tuples of the train exports; "crossfit": on the other folds of the validation
  # exports, scored out of fold by --mode=crossfit (emojax/crossfit.py says why).
  config.data.protocol = arg["protocol"]
  config.data.num_folds = 4
  config.data.fold = 0
  config.data.fold_seed = 0
  config.data.read_threads = 2
  config.data.prefetch = 4
  config.data.worker_count = 0
  config.data.augment = ml_collections.ConfigDict(dict(enabled=True, modality_dropout=0.2))

  config.model = fusion_head(arg["method"], arg["graph"])

  add_training(config, train=dict(batch_size=128), eval=dict(batch_size=256), checkpoint=dict(every_steps=1000))
  add_parallelism(config)

  if arg["runlocal"]:
    config.data.num_train_examples = 512
    config.data.num_eval_examples = 256
    config.train.num_steps = 20
    config.train.log_every_steps = 5
    config.checkpoint.every_steps = 10
  return config
