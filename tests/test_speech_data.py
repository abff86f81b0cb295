import collections
import shutil

import ml_collections
import numpy as np
import pytest
import soundfile

from emojax import labels
from emojax.data import audio, augment, features, load_split, pipeline, speech
from tests.conftest import speech_config


# --- file-name parsers -------------------------------------------------------------------------
def test_ravdess_parser_reads_every_real_file_name(ravdess_root):
  files = sorted(ravdess_root.glob("Actor_*/*.flac"))
  assert len(files) == 1200
  parsed = [speech.ravdess_emotion_from_filename(f.name) for f in files]
  assert all(actor == f.parent.name.split("_")[1] for (actor, _), f in zip(parsed, files))
  per_actor = collections.Counter((actor, emotion) for actor, emotion in parsed)
  for actor in ("01", "12", "20"):  # 8 files per emotion and actor, 4 for neutral (no strong intensity)
    assert [per_actor[(actor, e)] for e in labels.RAVDESS_CLASSES] == [4, 8, 8, 8, 8, 8, 8, 8]
  assert speech.ravdess_emotion_from_filename("03-01-05-02-01-01-12.wav") == ("12", "angry")


@pytest.mark.parametrize(
  "name, part",
  [
    ("03-01-09-01-01-01-01.wav", "emotion part '09' (part 3 of 7)"),
    ("01-01-05-01-01-01-01.wav", "modality part '01'"),
    ("03-02-05-01-01-01-01.wav", "vocal channel part '02'"),
    ("03-01-01-02-01-01-01.wav", "neutral (01) has no strong intensity"),
    ("03-01-05-01-01-01-30.wav", "actor part '30'"),
    ("03-01-05-01-01.wav", "expected 7 two-digit parts"),
  ],
)
def test_ravdess_parser_names_the_wrong_part(name, part):
  with pytest.raises(speech.BadFileName, match=part.replace("(", r"\(").replace(")", r"\)")):
    speech.ravdess_emotion_from_filename(name)


def test_tess_and_crema_d_parsers():
  assert speech.tess_emotion_from_filename("OAF_back_angry.wav") == ("OAF", "angry")
  assert speech.tess_emotion_from_filename("YAF_date_ps.wav") == ("YAF", "pleasant_surprise")
  assert speech.tess_emotion_from_filename("yaf_bite_Pleasant_surprised.wav") == ("YAF", "pleasant_surprise")
  with pytest.raises(speech.BadFileName, match="emotion part 'bored'"):
    speech.tess_emotion_from_filename("OAF_back_bored.wav")
  with pytest.raises(speech.BadFileName, match="speaker part 'XAF'"):
    speech.tess_emotion_from_filename("XAF_back_angry.wav")
  assert speech.crema_d_emotion_from_filename("1001_DFA_ANG_XX.wav") == ("1001", "anger")
  assert speech.crema_d_emotion_from_filename("1091_WSI_SAD_HI.wav") == ("1091", "sad")
  with pytest.raises(speech.BadFileName, match="emotion part 'SUR' \\(part 3 of 4\\)"):
    speech.crema_d_emotion_from_filename("1001_DFA_SUR_XX.wav")
  with pytest.raises(speech.BadFileName, match="actor part '0999'"):
    speech.crema_d_emotion_from_filename("0999_DFA_ANG_XX.wav")


def test_ekman_mapping_merges_or_drops_calm():
  assert labels.speech_to_ekman7("calm") == "neutral"
  assert labels.speech_to_ekman7("calm", calm="drop") is None
  assert {labels.speech_to_ekman7(c) for c in labels.RAVDESS_CLASSES} == set(labels.EKMAN7)
  assert {labels.speech_to_ekman7(c) for c in labels.TESS_CLASSES} == set(labels.EKMAN7)
  with pytest.raises(ValueError, match="config.data.calm='keep'"):
    labels.speech_to_ekman7("calm", calm="keep")


# --- readers and splits ------------------------------------------------------------------------
def test_ravdess_reader_splits_by_actor_with_padded_features(small_ravdess, tmp_path):
  config = speech_config(small_ravdess, tmp_path)
  train, validation = load_split(config.data, "train"), load_split(config.data, "validation")
  assert len(train) == 30 and len(validation) == 15
  assert set(train.arrays["speaker"]) == {"01", "02"} and set(validation.arrays["speaker"]) == {"03"}
  frames = features.num_frames(audio.max_clip_samples(config.data.audio), config.data.features.hop_length)
  assert train.arrays["features"].shape == (30, frames, 64) and train.num_classes == 8
  # Padding beyond each clip's frames is zero; clips are trimmed speech of 0.5-3 s.
  for row, n in zip(train.arrays["features"], train.arrays["num_frames"]):
    assert np.abs(row[n:]).max(initial=0) == 0 and np.abs(row[:n]).max() > 0
  assert 50 <= train.arrays["num_frames"].min() and train.arrays["num_frames"].max() <= frames
  assert train.model_inputs == ("features", "num_frames", "label")


def test_ekman7_labels_and_dropping_calm(small_ravdess, tmp_path):
  merged = load_split(speech_config(small_ravdess, tmp_path, "labels=ekman7").data, "train")
  assert merged.class_names == labels.EKMAN7
  counts = np.bincount(merged.arrays["label"], minlength=7)
  assert counts[labels.EKMAN7.index("neutral")] == 2 * 3  # 1 neutral + 2 calm files per actor, 2 actors
  dropped = load_split(speech_config(small_ravdess, tmp_path, "labels=ekman7", **{"data.calm": "drop"}).data, "train")
  assert len(dropped) == len(merged) - 4


def test_folds_validation_speakers_and_random_split(tmp_path):
  speakers = [f"{a:02d}" for a in range(1, 21)]
  config = ml_collections.ConfigDict(dict(validation_speakers=(), num_folds=5, fold=4))
  assert speech.validation_speakers(speakers, config) == {"17", "18", "19", "20"}
  config.validation_speakers = (7, "08")
  assert speech.validation_speakers(speakers, config) == {"07", "08"}
  config.validation_speakers = ("31",)
  with pytest.raises(ValueError, match="validation_speakers names \\['31'\\]"):
    speech.validation_speakers(speakers, config)
  config.validation_speakers, config.fold = (), 5
  with pytest.raises(ValueError, match="config.data.fold=5"):
    speech.validation_speakers(speakers, config)


def test_random_split_must_be_asked_for_and_mixes_speakers(small_ravdess, tmp_path):
  config = speech_config(small_ravdess, tmp_path, **{"data.split_by": "random", "data.validation_fraction": 0.3})
  train, validation = load_split(config.data, "train"), load_split(config.data, "validation")
  assert len(train) + len(validation) == 45
  assert set(validation.arrays["speaker"]) & set(train.arrays["speaker"])
  config.data.split_by = "chance"
  with pytest.raises(ValueError, match="split_by='chance'"):
    load_split(config.data, "train")
  config.data.split_by, config.data.validation_fraction = "random", 1.0
  with pytest.raises(ValueError, match="validation_fraction=1.0 must be in"):
    load_split(config.data, "train")
  every = speech_config(small_ravdess, tmp_path, **{"data.validation_speakers": ("01", "02", "03")})
  with pytest.raises(ValueError, match="validation_speakers .* leaves the train split of ravdess empty"):
    load_split(every.data, "validation")
  only = speech_config(small_ravdess, tmp_path, **{"data.speakers": ("01", "03")})
  assert set(load_split(only.data, "train").arrays["speaker"]) == {"01"}


def _write(path, wave, rate, channels=1):
  path.parent.mkdir(parents=True, exist_ok=True)
  soundfile.write(path, np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave, rate)


def test_tess_and_crema_d_readers_resample_any_rate_and_channels(ravdess_root, tmp_path):
  """Real speech rewritten under TESS / CREMA-D names at 44.1 kHz stereo comes out 16 kHz mono."""
  import librosa

  sources = sorted((ravdess_root / "Actor_01").glob("*.flac"))[:4]
  waves = [librosa.resample(soundfile.read(f, dtype="float32")[0], orig_sr=16000, target_sr=44100) for f in sources]
  tess, crema = tmp_path / "tess", tmp_path / "crema"
  for i, (speaker, emotion) in enumerate([("OAF", "angry"), ("OAF", "ps"), ("YAF", "sad"), ("YAF", "neutral")]):
    _write(tess / f"{speaker}_{emotion}" / f"{speaker}_word{i}_{emotion}.wav", waves[i], 44100, channels=2)
  for i, name in enumerate(["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TIE_SAD_LO", "1002_ITS_NEU_XX"]):
    _write(crema / f"{name}.wav", waves[i], 44100, channels=2)
  (crema / "1003_DFA_XYZ_XX.wav").write_bytes((crema / "1001_DFA_ANG_XX.wav").read_bytes())

  config = speech_config(tess, tmp_path / "cache", "data=tess", **{"data.validation_speakers": ("YAF",)})
  data = load_split(config.data, "train")
  assert list(data.arrays["id"]) == ["OAF_word0_angry", "OAF_word1_ps"]
  assert [data.class_names[i] for i in data.arrays["label"]] == ["angry", "pleasant_surprise"]
  config = speech_config(
    crema, tmp_path / "cache", "data=crema_d,labels=ekman7", **{"data.validation_speakers": ("1002",)}
  )
  data = load_split(config.data, "train")
  assert [data.class_names[i] for i in data.arrays["label"]] == ["anger", "happiness"]
  assert len(data.skipped) == 1 and "emotion part 'XYZ'" in data.skipped[0]
  # 44.1 kHz stereo -> 16 kHz mono: the trimmed clip is as long as the 16 kHz original's, within a frame.
  original = audio.prepare_clip(soundfile.read(sources[0], dtype="float32")[0], config.data.audio)
  assert abs(int(data.arrays["num_frames"][0]) - features.num_frames(len(original), 160)) <= 2


def test_unusable_audio_is_skipped_counted_and_named(small_ravdess, tmp_path, caplog):
  root = tmp_path / "corpus"
  shutil.copytree(small_ravdess / "Actor_01", root / "Actor_01")
  shutil.copytree(small_ravdess / "Actor_03", root / "Actor_03")
  folder, rate = root / "Actor_01", 16000
  _write(folder / "03-01-02-01-01-02-01.wav", np.zeros(rate, np.float32), rate)  # silent
  _write(folder / "03-01-03-01-01-02-01.wav", 0.5 * np.sin(np.arange(800) / 5).astype(np.float32), rate)  # 0.05 s
  (folder / "03-01-04-01-01-02-01.wav").write_bytes(b"RIFF....WAVEfmt garbage")  # unreadable
  (folder / "03-01-05-01-01-02-01.wav").write_bytes(b"")  # empty
  _write(folder / "03-01-06-01-01-02-01.wav", np.sign(np.sin(np.arange(rate) / 3)).astype(np.float32), rate)  # clipped
  (folder / "notes-about-actor-1.wav").write_bytes(b"")  # bad name
  config = speech_config(root, tmp_path / "cache")
  data = load_split(config.data, "train")
  assert len(data) == 15 and len(data.skipped) == 6
  reasons = "\n".join(data.skipped)
  for expected in ("silent", "too short", "unreadable audio", "clipped", "expected 7 two-digit parts"):
    assert expected in reasons, expected
  assert "Skipped 6 unreadable ravdess train files" in caplog.text


def test_missing_corpus_folder_says_what_to_do(tmp_path):
  config = speech_config(tmp_path / "nowhere", tmp_path / "cache")
  with pytest.raises(FileNotFoundError, match="does not exist. Point --config.data.root"):
    load_split(config.data, "train")
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="No audio files"):
    load_split(speech_config(tmp_path / "empty", tmp_path / "cache").data, "train")


# --- features and their cache ------------------------------------------------------------------
def _config(**features_overrides):
  from configs.speech import get_config

  config = get_config().data
  for key, value in features_overrides.items():
    config.features[key] = value
  return config


def test_feature_shapes_follow_the_config(ravdess_root):
  wave = audio.prepare_clip(audio.read_audio(next(ravdess_root.glob("Actor_02/*.flac")), 16000), _config().audio)
  frames = features.num_frames(len(wave), 160)
  for overrides, dim in [
    ({}, 64),
    ({"kind": "mfcc"}, 120),
    ({"kind": "mfcc", "deltas": False}, 40),
    ({"prosody": True}, 68),
    ({"prosody": True, "pitch_method": "pyin"}, 68),
  ]:
    config = _config(**overrides)
    out = features.frame_features(wave, 16000, config.features)
    assert out.shape == (frames, dim) == (frames, features.feature_dim(config.features)), overrides
    assert out.dtype == np.float32 and np.isfinite(out).all()
  prosody = features.prosody(wave, 16000, _config(prosody=True).features)
  voiced = prosody[:, 1] > 0.5
  assert 0.2 < voiced.mean() < 1.0  # speech has voiced and unvoiced frames
  f0 = 100 * 2 ** prosody[voiced, 0]
  assert 70 < np.median(f0) < 400  # a human speaking voice
  egemaps = features.functionals(wave, 16000)
  assert egemaps.shape == (features.EGEMAPS_DIMS,) and np.isfinite(egemaps).all()
  with pytest.raises(ValueError, match="features.kind='spectrogram'"):
    features.validate(_config(kind="spectrogram").features)


def test_cache_hits_on_the_second_read_and_misses_on_a_new_config(ravdess_root, tmp_path):
  files = sorted(ravdess_root.glob("Actor_04/*.flac"))[:3]
  config = _config()
  cache = features.FeatureCache(tmp_path, config)
  first = [features.extract(f, config, cache) for f in files]
  again = [features.extract(f, config, cache) for f in files]
  assert (cache.hits, cache.misses) == (3, 3)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a["features"], b["features"])
    np.testing.assert_array_equal(a["audio"], b["audio"])
  other = _config(n_mels=40)
  other_cache = features.FeatureCache(tmp_path, other)
  assert features.extract(files[0], other, other_cache)["features"].shape[1] == 40 and other_cache.misses == 1


def test_cache_survives_interruption_and_damage(ravdess_root, tmp_path, monkeypatch):
  file = next(ravdess_root.glob("Actor_05/*.flac"))
  config = _config()
  cache = features.FeatureCache(tmp_path, config)

  def killed_mid_write(f, **arrays):
    f.write(b"PK\x03\x04 half an entry")
    raise KeyboardInterrupt

  monkeypatch.setattr(np, "savez", killed_mid_write)
  with pytest.raises(KeyboardInterrupt):
    features.extract(file, config, cache)
  monkeypatch.undo()
  assert not list(tmp_path.rglob("*.npz")) and not list(tmp_path.rglob("*.tmp"))  # nothing half-written stays

  good = features.extract(file, config, cache)
  (entry,) = tmp_path.rglob("*.npz")
  entry.write_bytes(entry.read_bytes()[:100])  # damaged from outside: detected and recomputed
  again = features.extract(file, config, features.FeatureCache(tmp_path, config))
  np.testing.assert_array_equal(good["features"], again["features"])


# --- augmentation ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def speech_wave(ravdess_root):
  from configs.speech import get_config

  return audio.prepare_clip(
    audio.read_audio(next(ravdess_root.glob("Actor_06/*-03-02-*.flac")), 16000), get_config().data.audio
  )


def test_waveform_augmentations_keep_their_invariants(speech_wave):
  shifted = augment.pitch_shift(speech_wave, 16000, 2.0)
  assert shifted.shape == speech_wave.shape and shifted.dtype == np.float32
  assert not np.allclose(shifted, speech_wave)
  for rate in (0.9, 1.1):
    stretched = augment.time_stretch(speech_wave, rate)
    assert abs(len(stretched) - len(speech_wave) / rate) <= 1
  for snr in (5.0, 20.0):
    noisy = augment.add_noise(speech_wave, snr, np.random.default_rng(0))
    noise = noisy - speech_wave
    measured = 10 * np.log10(np.mean(speech_wave.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
    assert noisy.shape == speech_wave.shape and measured == pytest.approx(snr, abs=0.01)


def test_spec_augment_masks_only_real_frames_and_spectral_dims():
  features_in = np.random.default_rng(0).normal(size=(100, 68)).astype(np.float32)
  features_in[80:] = 0.0
  config = ml_collections.ConfigDict(dict(time_masks=2, time_mask_frames=20, freq_masks=2, freq_mask_bins=10))
  out = augment.spec_augment(features_in, 80, np.random.default_rng(3), config, spectral_dims=64)
  np.testing.assert_array_equal(out[:, 64:], features_in[:, 64:])  # prosody untouched
  np.testing.assert_array_equal(out[80:], 0.0)  # padding untouched
  assert (out != features_in).any()


def test_augmented_training_examples_keep_shapes_and_refeaturise(small_ravdess, tmp_path):
  config = speech_config(small_ravdess, tmp_path, **{"data.augment.probability": 1.0})
  data = load_split(config.data, "train")
  assert "audio" in data.arrays  # kept because waveform augmentation needs it
  example = data[0]
  out = features.augment_speech(example, np.random.default_rng(0), config.data)
  assert out["features"].shape == example["features"].shape and out["audio"].shape == example["audio"].shape
  assert out["num_frames"] == features.num_frames(int(out["length"]), 160)
  assert not np.allclose(out["features"], example["features"])
  batch = next(pipeline.train_iterator(data, config, seed=0))
  assert set(batch) == {"features", "num_frames", "label"} and batch["features"].shape[0] == 8
  config.data.augment.time_stretch = 1.5
  with pytest.raises(ValueError, match="time_stretch=1.5"):
    pipeline.train_iterator(data, config, seed=0)


# --- augmented feature copies ------------------------------------------------------------------
@pytest.fixture(scope="module")
def copies_corpus(ravdess_root, tmp_path_factory):
  """Five real files: three of actor 01 (train), two of actor 02 (validation)."""
  root = tmp_path_factory.mktemp("ravdess_copies")
  for actor, count in (("01", 3), ("02", 2)):
    (root / f"Actor_{actor}").mkdir()
    for f in sorted((ravdess_root / f"Actor_{actor}").glob("*-02-01-01-*.flac"))[:count]:
      shutil.copy(f, root / f"Actor_{actor}" / f.name)
  return root


def _copies_config(root, cache_dir, arg="", **overrides):
  return speech_config(root, cache_dir, arg, **{"data.validation_speakers": ("02",), **overrides})


def _count_cache_writes(monkeypatch) -> list:
  """Every computed entry (clean features or a copy) is written to the cache once. (Counting `frame_features`
  calls would also count the re-featurisation of grain threads that an earlier test's iterator left running.)"""
  calls = []
  original = features.FeatureCache.put

  def counted(self, content, arrays, variant=b""):
    calls.append(variant)
    return original(self, content, arrays, variant)

  monkeypatch.setattr(features.FeatureCache, "put", counted)
  return calls


def test_feature_copies_are_prepared_once_cached_and_train_only(copies_corpus, tmp_path, monkeypatch):
  calls = _count_cache_writes(monkeypatch)
  config = _copies_config(copies_corpus, tmp_path / "cache", **{"data.augment.feature_copies": 2})
  train = load_split(config.data, "train")
  assert len(calls) == 3 + 3 * 2 and calls.count(b"") == 3  # clean features and two copies of each train file
  assert train.model_inputs == ("features", "num_frames", "label", "augmented_features", "augmented_num_frames")
  copies, copy_frames = train.arrays["augmented_features"], train.arrays["augmented_num_frames"]
  assert copies.shape == (3, 2) + train.arrays["features"].shape[1:] and copies.dtype == np.float32
  assert copy_frames.shape == (3, 2) and copy_frames.dtype == np.int32
  assert "audio" not in train.arrays  # copies replace per-example re-featurisation: no waveforms kept
  for row in range(3):
    clean = train.arrays["features"][row]
    for k in range(2):
      n = copy_frames[row, k]
      assert np.abs(copies[row, k, n:]).max(initial=0) == 0 and np.abs(copies[row, k, :n]).max() > 0  # padding
      frames = min(n, train.arrays["num_frames"][row])
      assert not np.allclose(copies[row, k, :frames], clean[:frames], atol=1e-3)  # every copy is augmented
    assert not np.allclose(copies[row, 0], copies[row, 1], atol=1e-3)

  calls.clear()
  again = load_split(config.data, "train")
  assert not calls  # the second load reads clean features and copies from the cache: nothing is computed
  for key in ("features", "augmented_features", "augmented_num_frames"):
    np.testing.assert_array_equal(again.arrays[key], train.arrays[key])
  # Deterministic without the cache too (copies are seeded by file content and index, not by thread or order),
  # and raising K keeps copies 0..1, computing only copy 2.
  fresh = load_split(
    _copies_config(
      copies_corpus, tmp_path / "other", **{"data.augment.feature_copies": 2, "data.feature_threads": 2}
    ).data,
    "train",
  )
  np.testing.assert_array_equal(fresh.arrays["augmented_features"], train.arrays["augmented_features"])
  calls.clear()
  config.data.augment.feature_copies = 3
  more = load_split(config.data, "train")
  assert len(calls) == 3
  np.testing.assert_array_equal(more.arrays["augmented_features"][:, :2], train.arrays["augmented_features"])

  validation = load_split(config.data, "validation")
  assert validation.model_inputs == ("features", "num_frames", "label")
  assert not {"augmented_features", "augmented_num_frames"} & set(validation.arrays)
  # The grain path picks on the host; the batch carries what the model reads, not the copies.
  batch = next(pipeline.train_iterator(train, config, seed=0))
  assert set(batch) == {"features", "num_frames", "label"} and batch["features"].shape == (8,) + copies.shape[2:]


def test_feature_copies_zero_or_unused_change_nothing(copies_corpus, tmp_path, caplog):
  config = _copies_config(copies_corpus, tmp_path)
  assert config.data.augment.feature_copies == 0
  default = load_split(config.data, "train")
  del config.data.augment["feature_copies"]  # a config.json written before the field existed
  older = load_split(config.data, "train")
  assert default.model_inputs == older.model_inputs == ("features", "num_frames", "label")
  assert (
    set(default.arrays) == set(older.arrays) == {"features", "num_frames", "length", "label", "speaker", "id", "audio"}
  )
  for key in default.arrays:
    np.testing.assert_array_equal(default.arrays[key], older.arrays[key])
  off = _copies_config(copies_corpus, tmp_path, **{"data.augment.feature_copies": 2, "data.augment.probability": 0.0})
  unused = load_split(off.data, "train")
  assert "augmented_features" not in unused.arrays and "feature_copies=2 is unused" in caplog.text


def test_feature_copies_config_errors(copies_corpus, tmp_path):
  config = _copies_config(copies_corpus, tmp_path, "model=wav2vec2", **{"data.augment.feature_copies": 2})
  with pytest.raises(ValueError, match="feature_copies=2 needs config.data.input='features'.*feature_copies=0"):
    load_split(config.data, "train")
  for bad in (-1, 1.5, True):  # as a config.json or an untyped config could give them
    config = _copies_config(copies_corpus, tmp_path)
    config.data.augment = ml_collections.ConfigDict({**config.data.augment.to_dict(), "feature_copies": bad})
    with pytest.raises(ValueError, match="feature_copies=.* must be an integer >= 0"):
      load_split(config.data, "validation")
  no_transform = ml_collections.ConfigDict(
    dict(probability=0.5, pitch_shift_semitones=0.0, time_stretch=0.0, add_noise=False, gain_db=0.0)
  )
  with pytest.raises(ValueError, match="no waveform transform to make copies with"):
    augment.augmented_copy(np.ones(8000, np.float32), 16000, np.random.default_rng(0), no_transform)


def _marked_copies(rows: int, count: int = 3, frames: int = 20, dim: int = 4) -> dict:
  """Clean features all 0 with 10 frames; copy k all k + 1 with 11 + k frames, so a row shows what it got."""
  copies = np.broadcast_to(np.arange(1, count + 1, dtype=np.float32)[None, :, None, None], (rows, count, frames, dim))
  return {
    "features": np.zeros((rows, frames, dim), np.float32),
    "num_frames": np.full(rows, 10, np.int32),
    "augmented_features": np.ascontiguousarray(copies),
    "label": np.zeros(rows, np.int32),
    "augmented_num_frames": np.broadcast_to(np.arange(11, 11 + count, dtype=np.int32), (rows, count)).copy(),
  }


def _check_picks(features_out, frames_out, rate, count=3):
  chosen = features_out[:, 0, 0].astype(int)  # 0: clean, k + 1: copy k
  assert np.all(features_out == chosen[:, None, None]) and np.all(frames_out == np.where(chosen, 10 + chosen, 10))
  assert abs(np.mean(chosen > 0) - rate) < 0.04
  if rate > 0:
    shares = np.bincount(chosen[chosen > 0], minlength=count + 1)[1:] / max(1, np.sum(chosen > 0))
    np.testing.assert_allclose(shares, 1 / count, atol=0.05)


def test_picking_copies_numpy_and_jnp_at_the_configured_rate(tmp_path):
  import jax

  config = _copies_config(
    tmp_path, tmp_path, **{"data.augment.probability": 0.3, "data.augment.time_masks": 0, "data.augment.freq_masks": 0}
  )
  rate = augment.waveform_change_probability(config.data.augment)
  assert rate == pytest.approx(1 - 0.7**4)  # four transforms on: a copy is used as often as today's path augments
  batch = _marked_copies(2000)
  examples = [
    features.augment_speech({k: v[i] for k, v in batch.items()}, np.random.default_rng(i), config.data)
    for i in range(2000)
  ]
  assert all(e["features"].shape == (20, 4) and e["num_frames"].dtype == np.int32 for e in examples)
  _check_picks(np.stack([e["features"] for e in examples]), np.stack([e["num_frames"] for e in examples]), rate)

  pick = jax.jit(augment.pick_feature_copies)
  for probability in (0.0, rate, 1.0):
    out = pick(jax.random.key(1), batch, probability)
    assert set(out) == {"features", "num_frames", "label"}
    assert out["features"].shape == (2000, 20, 4) and out["num_frames"].dtype == np.int32
    _check_picks(np.asarray(out["features"]), np.asarray(out["num_frames"]), probability)
