import pytest

from configs.face_cnn import get_config
from emojax.config_utils import parse_arg


def test_parse_arg_types_flags_and_errors():
  assert parse_arg("model=x,runlocal", model="a", runlocal=False, n=1) == {"model": "x", "runlocal": True, "n": 1}
  assert parse_arg("n=7", n=1)["n"] == 7
  with pytest.raises(ValueError, match="Unknown config argument 'modle'"):
    parse_arg("modle=x", model="a")


def test_variants_and_defaults_run_from_names_alone():
  config = get_config("model=residual_attention,data=fer2013")
  assert config.model.name == "face.residual_attention_cnn" and config.data.root.endswith("fer2013")
  assert get_config().model.name == "face.deep_cnn" and get_config().model.width == 1.0
  assert get_config("data=synthetic,runlocal").train.num_epochs < get_config().train.num_epochs
  with pytest.raises(ValueError, match="model='vgg'"):
    get_config("model=vgg")


def test_speech_config_variants():
  from configs.speech import get_config as speech_config

  default = speech_config()
  assert default.model.name == "speech.cnn_lstm" and default.data.name == "ravdess"
  assert default.data.split_by == "speaker" and (default.data.num_folds, default.data.fold) == (5, 4)
  assert default.data.input == "features" and default.data.labels == "native"
  conformer = speech_config("model=conformer,frontend=wav2vec2,labels=ekman7")
  assert conformer.data.input == "waveform" and conformer.model.num_frozen_layers == -1
  assert speech_config("data=tess").data.num_folds == 2
  with pytest.raises(ValueError, match="data='iemocap'"):
    speech_config("data=iemocap")
  with pytest.raises(ValueError, match="frontend applies to model=conformer only"):
    speech_config("model=cnn_lstm,frontend=wav2vec2")


def test_training_blocks_come_from_one_helper_with_overrides():
  import ml_collections

  from emojax import config_utils

  config = ml_collections.ConfigDict()
  config_utils.add_training(config, optimizer=dict(learning_rate=3e-4), train=dict(batch_size=8))
  assert config.optimizer.learning_rate == 3e-4 and config.optimizer.b2 == config_utils.OPTIMIZER["b2"]
  assert config.train.batch_size == 8 and config.train.label_smoothing == 0.0 and "focal_gamma" not in config.train
  assert config.checkpoint.to_dict() == config_utils.CHECKPOINT and "momentum" not in config.optimizer
  config_utils.add_training(config, multi_label=True)
  assert "label_smoothing" not in config.train and config.train.focal_gamma == 0.0
  with pytest.raises(ValueError, match=r"config.train has no field\(s\) \['label_smothing'\]"):
    config_utils.add_training(config, train=dict(label_smothing=0.1))
  # Every shipped config builds its blocks this way: AdamW everywhere, so no momentum field.
  for name in ("face_cnn", "speech", "text", "fusion", "multimodal", "aligned"):
    module = __import__(f"configs.{name}", fromlist=["get_config"])
    built = module.get_config(None)
    assert built.optimizer.name == "adamw" and "momentum" not in built.optimizer, name
