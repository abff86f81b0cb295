"""Using trained models: bundles, the Recognizer on every input type, `emojax predict / evaluate / export-model`.

Tiny real runs (a few steps on copies of real FER2013, RAVDESS and GoEmotions rows, and the synthetic end-to-end
fusion) are trained once per session and exported; the Recognizer must give, for real files, what the evaluator
gave for the same rows.
"""

import io
import json
import shutil

import numpy as np
import pytest
import soundfile
from PIL import Image

from emojax import labels as labels_lib
from emojax.inference import BundleError, InputError, Recognizer, bundle, scoring

pytestmark = pytest.mark.slow  # trains models, runs servers, browsers or subprocesses


def _softmax(logits):
  logits = np.asarray(logits, np.float64)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# Runs: face_run, speech_run, text_run and fusion_bundle are session fixtures in conftest.py (tests/test_serve*.py
# serve the same bundles).
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def face_recognizer(face_run):
  return Recognizer.load(face_run["bundle"])


# ----------------------------------------------------------------------------------------------
# Bundles.
# ----------------------------------------------------------------------------------------------
def test_bundle_holds_model_labels_metrics_and_checksums(face_run):
  manifest = bundle.read_manifest(face_run["bundle"])
  assert manifest["format_version"] == bundle.FORMAT_VERSION and manifest["emojax_version"] != "unknown"
  assert len(manifest["commit"]["commit"]) == 40 and manifest["model"] == "face.residual_attention_cnn"
  assert manifest["labels"]["class_names"] == list(labels_lib.EKMAN7) and manifest["inputs"] == {"face": "image"}
  report = json.loads((face_run["workdir"] / "eval" / "report.json").read_text())
  assert manifest["validation"]["accuracy"] == report["all"]["accuracy"]
  assert (
    manifest["validation"]["subsets"]["without_train_duplicates"]["accuracy"]
    == report["without_train_duplicates"]["accuracy"]
  )
  assert set(manifest["files"]) == {bundle.WEIGHTS, bundle.VALIDATION_REPORT}
  # Parameters and batch-norm statistics only: no optimizer state, no step.
  from safetensors.numpy import load_file

  names = set(load_file(str(face_run["bundle"] / bundle.WEIGHTS)))
  assert {n.split("/")[0] for n in names} == {"params", "batch_stats"}
  assert manifest["config"]["data"]["root"] == "" and manifest["config"]["compilation_cache_dir"] == ""


def test_bundle_round_trip_equals_the_workdir(face_run, face_recognizer):
  from_workdir = Recognizer.load(face_run["workdir"], warmup=False)
  faces = sorted(face_run["root"].glob("validation/*/*.jpg"))[:5]
  for a, b in zip(
    face_recognizer.predict_batch(faces=faces, detect="none"), from_workdir.predict_batch(faces=faces, detect="none")
  ):
    assert a.to_dict() == b.to_dict()


def test_text_bundle_loads_without_its_data_or_hugging_face_folder(text_run):
  """The fixture deleted both; the bundle carries the tokenizer and encoder config.json, the weights and labels."""
  manifest = bundle.read_manifest(text_run["bundle"])
  assert (text_run["bundle"] / "encoders" / "model_pretrained" / "tokenizer.json").is_file()
  assert not (text_run["bundle"] / "encoders" / "model_pretrained" / "model.safetensors").exists()
  assert (
    manifest["config"]["model"]["pretrained"]
    == manifest["config"]["data"]["tokenizer"]
    == "bundle:encoders/model_pretrained"
  )
  recognizer = Recognizer.load(text_run["bundle"], warmup=False)
  result = recognizer.predict(text="I am so happy for you!")
  assert set(result.texts[0].probabilities) == set(recognizer.class_names) and len(recognizer.class_names) == 28
  assert set(result.texts[0].sentiment) == {"positive", "negative", "ambiguous", "neutral"}


def test_damaged_or_foreign_bundles_are_refused_by_name(face_run, tmp_path):
  def copy(name):
    target = tmp_path / name
    shutil.copytree(face_run["bundle"], target)
    return target

  flipped = copy("flipped")
  data = bytearray((flipped / bundle.WEIGHTS).read_bytes())
  data[-5] ^= 0xFF
  (flipped / bundle.WEIGHTS).write_bytes(bytes(data))
  with pytest.raises(BundleError, match=f"Damaged bundle .*{bundle.WEIGHTS} differs"):
    bundle.load(flipped)
  missing = copy("missing")
  (missing / bundle.VALIDATION_REPORT).unlink()
  with pytest.raises(BundleError, match=f"{bundle.VALIDATION_REPORT} is missing"):
    bundle.load(missing)
  newer = copy("newer")
  manifest = json.loads((newer / bundle.MANIFEST).read_text())
  (newer / bundle.MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
  with pytest.raises(BundleError, match="format version 99; .* reads version 1: upgrade emojax"):
    bundle.load(newer)
  broken = copy("broken")
  (broken / bundle.MANIFEST).write_text("{not json")
  with pytest.raises(BundleError, match="bundle.json is not valid JSON"):
    bundle.load(broken)
  with pytest.raises(BundleError, match="neither a bundle .* nor a training workdir"):
    bundle.load(tmp_path)
  # Weights that do not fit the model (here: another run's) are named, not a shape error deep inside Flax.
  other = bundle.load_variables(face_run["bundle"] / bundle.WEIGHTS)
  other["params"]["classifier"]["kernel"] = np.zeros((3, 3), np.float32)
  trained = bundle.load(face_run["bundle"])
  with pytest.raises(BundleError, match="do not fit the model .*shapes differ at .*classifier/kernel"):
    bundle.check_variables(trained.model, trained.spec, other)


# ----------------------------------------------------------------------------------------------
# One preprocessing path: predict equals the evaluator on real files.
# ----------------------------------------------------------------------------------------------
def test_face_predictions_equal_the_evaluator_on_real_fer2013_files(face_run, face_recognizer):
  files = sorted(face_run["root"].glob("validation/*/*.jpg"))
  results = face_recognizer.predict_batch(faces=files, detect="none")
  for file, result in zip(files, results):
    expected = _softmax(face_run["logits"][f"{file.parent.name}/{file.stem}"])
    got = np.array([result.faces[0].probabilities[c] for c in labels_lib.EKMAN7])
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_speech_predictions_equal_the_evaluator_on_real_ravdess_clips(speech_run):
  recognizer = Recognizer.load(speech_run["bundle"], warmup=False)
  files = sorted(speech_run["root"].glob("Actor_03/*.flac"))
  results = recognizer.predict_batch(audios=files)
  assert all(len(r.speech.windows) == 1 for r in results)  # the centre 3 s, as the reader keeps it
  assert max(r.speech.seconds for r in results) > 3.0  # (some clips are longer than that after trimming)
  for file, result in zip(files, results):
    expected = _softmax(speech_run["logits"][file.stem])
    got = np.array([result.speech.probabilities[c] for c in labels_lib.RAVDESS_CLASSES])
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_text_predictions_equal_the_evaluator_on_real_goemotions_comments(text_run):
  recognizer = Recognizer.load(text_run["bundle"], warmup=False)
  rows = text_run["dev"][:40]
  results = recognizer.predict_batch(texts=[text for text, _, _ in rows])
  names = recognizer.class_names
  for (_, _, comment_id), result in zip(rows, results):
    expected = 1 / (1 + np.exp(-np.asarray(text_run["logits"][comment_id], np.float64)))
    got = np.array([result.texts[0].probabilities[n] for n in names])
    np.testing.assert_allclose(got, expected, atol=2e-5)


# ----------------------------------------------------------------------------------------------
# The API on every input type.
# ----------------------------------------------------------------------------------------------
def _photo(face_file, size=(480, 360), at=(140, 80), side=180, mode="L"):
  canvas = Image.new(mode, size, 120 if mode == "L" else (90, 140, 200))
  canvas.paste(Image.open(face_file).convert(mode).resize((side, side), Image.BILINEAR), at)
  return canvas


def test_faces_from_every_kind_of_input(face_run, face_recognizer):
  file = sorted(face_run["root"].glob("validation/happy/*.jpg"))[0]
  reference = face_recognizer.predict(face=file, detect="none").faces[0].probabilities
  gray = np.asarray(Image.open(file))
  for source in (
    str(file),
    file.read_bytes(),
    io.BytesIO(file.read_bytes()),
    gray,
    gray[..., None],
    np.repeat(gray[..., None], 3, -1),
    gray.astype(np.float32) / 255,
    Image.open(file),
  ):
    got = face_recognizer.predict(face=source, detect="none").faces[0].probabilities
    assert got == pytest.approx(reference, abs=1e-5)
  # Detection in a colour photo of another size: the face is found where it was pasted, with its box.
  photo = _photo(file, mode="RGB")
  result = face_recognizer.predict(face=np.asarray(photo))
  (face,) = result.faces
  x, y, w, h = face.box
  assert 120 <= x + w / 2 <= 340 and 60 <= y + h / 2 <= 270 and w >= 100
  assert result.fused.label == face.label and result.fused.weights == {"face": 1.0}
  assert 0 < face.confidence < 1  # ResidualAttentionCNN's confidence head
  json.loads(result.to_json())
  two = face_recognizer.predict(face=np.concatenate([np.asarray(photo.convert("L"))] * 2, axis=1))
  assert len(two.faces) == 2


def test_pictures_without_faces_and_bad_pictures(face_recognizer, tmp_path):
  noise = np.random.default_rng(0).integers(0, 255, (240, 320), dtype=np.uint8)
  result = face_recognizer.predict(face=noise)
  assert result.faces == [] and "no face found" in result.reasons["face"] and result.fused is None
  assert result.to_dict()["faces"] == []
  (tmp_path / "notes.txt").write_text("not a picture")
  for source, message in (
    (tmp_path / "notes.txt", "not an image"),
    (b"", "empty image bytes"),
    (tmp_path / "absent.jpg", "no image file"),
    (np.zeros((4, 4, 2)), "shape"),
    (np.array([[np.nan]]), "NaN"),
  ):
    with pytest.raises(InputError, match=message):
      face_recognizer.predict(face=source)
  with pytest.raises(InputError, match="reads face .*cannot use audio"):
    face_recognizer.predict(audio=np.zeros(16000), sample_rate=16000)
  with pytest.raises(InputError, match="Nothing to predict"):
    face_recognizer.predict()
  with pytest.raises(InputError, match="detect='opencv'"):
    face_recognizer.predict(face=noise, detect="opencv")


def _write(path, samples, rate, subtype="PCM_16"):
  soundfile.write(path, samples, rate, subtype=subtype)
  return path


def test_audio_inputs_windows_and_bad_audio(speech_run, tmp_path):
  recognizer = Recognizer.load(speech_run["bundle"], warmup=False)
  files = sorted(speech_run["root"].glob("Actor_03/*.flac"))
  clip, rate = soundfile.read(files[4], dtype="float32")
  reference = recognizer.predict(audio=files[4]).speech
  # Bytes and samples with their rate are the same recording; a 44.1 kHz stereo WAV of it is resampled back.
  for source, kwargs in ((files[4].read_bytes(), {}), (clip, {"sample_rate": rate})):
    assert recognizer.predict(audio=source, **kwargs).speech.probabilities == pytest.approx(
      reference.probabilities, abs=1e-6
    )
  import librosa

  stereo = np.stack([librosa.resample(clip, orig_sr=rate, target_sr=44100)] * 2, 1)
  resampled = recognizer.predict(audio=_write(tmp_path / "stereo.wav", stereo, 44100)).speech
  assert resampled.probabilities == pytest.approx(reference.probabilities, abs=0.05)
  # A long recording (over two clips): sliding windows of the clip cap (3 s) every 1.5 s, the last ending at the end.
  long = np.concatenate([soundfile.read(f, dtype="float32")[0] for f in files[:5]])
  prediction = recognizer.predict(audio=long, sample_rate=rate)
  result = prediction.speech
  starts = [w.start for w in result.windows]
  assert len(result.windows) >= 3 and starts[:2] == [0.0, 1.5] and all(w.end - w.start == 3.0 for w in result.windows)
  assert result.windows[-1].end == pytest.approx(result.seconds, abs=1e-3)
  mean = np.mean([[w.probabilities[c] for c in recognizer.class_names] for w in result.windows], 0)
  assert [result.probabilities[c] for c in recognizer.class_names] == pytest.approx(mean, abs=1e-5)
  # Its Ekman-7 view: calm and neutral summed into neutral, averaged over the windows.
  ekman = labels_lib.single_label_space(recognizer.class_names).ekman_matrix
  assert list(prediction.fused.probabilities.values()) == pytest.approx(mean @ ekman, abs=1e-5)
  # Unusable audio: one line each, naming the reason.
  for source, kwargs, message in (
    (np.zeros(32000, np.float32), {"sample_rate": 16000}, "silent"),
    (0.3 * np.sin(np.arange(3000) / 5).astype(np.float32), {"sample_rate": 16000}, "too short"),
    (clip, {}, "needs sample_rate="),
    (b"", {}, "empty bytes"),
    (b"RIFF0000WAVEjunk", {}, "unreadable audio"),
    (tmp_path / "absent.wav", {}, "no file"),
  ):
    with pytest.raises(InputError, match=message):
      recognizer.predict(audio=source, **kwargs)
  with pytest.raises(InputError, match="item 1: audio: silent"):
    recognizer.predict_batch(audios=[files[0], np.zeros(32000, np.float32)], sample_rate=16000)


def test_transcribe_returns_the_words_of_a_recording(speech_run, text_run):
  """Whisper base hears what the RAVDESS actor said; a model without audio refuses transcribe=True by name."""
  pytest.importorskip("faster_whisper")
  from emojax import speech_to_text

  recognizer = Recognizer.load(speech_run["bundle"], warmup=False)
  path = sorted(speech_run["root"].glob("Actor_03/*.flac"))[4]
  prediction = recognizer.predict(audio=io.BytesIO(path.read_bytes()), transcribe=True)
  reference = speech_to_text.ravdess_reference(path.name)
  assert speech_to_text.word_errors(reference, prediction.transcript["text"]) == (0, 6)
  assert prediction.speech.probabilities == pytest.approx(recognizer.predict(audio=path).speech.probabilities)
  assert recognizer.predict(audio=path).transcript is None
  with pytest.raises(InputError, match="needs a model that reads audio"):
    Recognizer.load(text_run["bundle"], warmup=False).predict(text="hello", transcribe=True)


def test_text_inputs_thresholds_and_bad_text(text_run):
  recognizer = Recognizer.load(text_run["bundle"], warmup=False)
  report = json.loads((text_run["workdir"] / "eval" / "report.json").read_text())
  tuned = [report["all"]["thresholds"][n] for n in recognizer.class_names]
  assert list(recognizer.trained.thresholds) == pytest.approx(tuned)
  result = recognizer.predict(text=["What a wonderful day", "I miss her so much"])
  assert len(result.texts) == 2
  for text in result.texts:
    chosen = [n for n, t in zip(recognizer.class_names, tuned) if text.probabilities[n] >= t]
    assert text.labels == chosen and text.label == max(text.probabilities, key=text.probabilities.get)
  # The text's Ekman-7 view: each group's most probable member, normalised, averaged over the two texts.
  assert sum(result.fused.probabilities.values()) == pytest.approx(1, abs=1e-4)
  for source, message in (("   ", "empty"), ([], "non-empty list"), (["ok", 3], "expected a string")):
    with pytest.raises(InputError, match=message):
      recognizer.predict(text=source)


def test_fusion_bundle_predicts_with_any_subset_of_modalities(fusion_bundle):
  from emojax.data import synthetic

  recognizer = Recognizer.load(fusion_bundle, warmup=False)
  assert recognizer.modalities == ("face", "speech", "text")
  rng = np.random.default_rng(0)
  face = synthetic.draw_face(3, rng)
  frames = rng.standard_normal(recognizer.spec.example["speech_features"].shape).astype(np.float32)
  full = recognizer.predict(face=face, audio=frames[:30], text=[1, 20, 30, 40], detect="none")
  assert full.fused.modalities == ["face", "speech", "text"] and full.fused.method == "fusion.gat"
  assert sum(full.fused.probabilities.values()) == pytest.approx(1, abs=1e-4)
  assert full.faces[0].box == [0, 0, 48, 48] and full.speech is not None and full.texts is not None
  face_only = recognizer.predict(face=face, detect="none")
  assert face_only.fused.modalities == ["face"] and face_only.reasons == {"speech": "not given", "text": "not given"}
  no_face = recognizer.predict(face=np.full((64, 64), 128, np.uint8), text=[1, 5])
  assert no_face.faces == [] and "no face found" in no_face.reasons["face"] and no_face.fused.modalities == ["text"]
  with pytest.raises(InputError, match="synthetic token ids"):
    recognizer.predict(text="a sentence")
  with pytest.raises(InputError, match="synthetic feature matrices"):
    recognizer.predict(audio="speech.wav")
  json.loads(full.to_json())


# ----------------------------------------------------------------------------------------------
# Compile once.
# ----------------------------------------------------------------------------------------------
def test_inputs_of_many_sizes_compile_no_more_than_the_buckets(text_run, speech_run):
  text = Recognizer.load(text_run["bundle"], batch_sizes=(1, 8))
  buckets = len(text.bucket_shapes())
  assert text.compiled_programs() == buckets == 2 * len(text.spec.sequences[0].buckets)
  words = "so happy and yet a little sad about all of it , honestly".split()
  for count in (1, 3, 8, 9, 20):
    text.predict_batch(texts=[" ".join(words[: 1 + (i * 7) % len(words)] * (1 + i % 5)) for i in range(count)])
  assert text.compiled_programs() == buckets
  speech = Recognizer.load(speech_run["bundle"], batch_sizes=(1,))
  buckets = len(speech.bucket_shapes())
  rng = np.random.default_rng(0)
  for seconds in (0.6, 1.2, 2.3, 3.0, 4.1, 7.5):  # clips of 1, 2 and 3 s buckets; 7.5 s: windows
    speech.predict(audio=0.1 * rng.standard_normal(int(16000 * seconds)).astype(np.float32), sample_rate=16000)
  assert speech.compiled_programs() == buckets == 3


# ----------------------------------------------------------------------------------------------
# Scoring on any corpus, through Ekman-7 when the label spaces differ.
# ----------------------------------------------------------------------------------------------
def test_evaluate_reproduces_the_runs_validation_report(face_run, speech_run, tmp_path):
  for run, data, root in ((face_run, "fer2013", face_run["root"]), (speech_run, "ravdess", speech_run["root"])):
    report, _ = scoring.evaluate_models(
      [str(run["bundle"])],
      data,
      str(root),
      "validation",
      str(tmp_path / data),
      {"cache_dir": str(tmp_path / "cache")} if data == "ravdess" else None,
    )
    trained = json.loads((run["workdir"] / "eval" / "report.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "num_examples"):
      assert report["all"][key] == pytest.approx(trained["all"][key], abs=1e-12), key
    assert report["all"]["loss"] == pytest.approx(trained["all"]["loss"], rel=1e-5)
    assert (tmp_path / data / "report.md").is_file() and (tmp_path / data / "predictions.npz").is_file()
  ensemble, _ = scoring.evaluate_models(
    [str(face_run["bundle"]), str(face_run["workdir"])],
    "fer2013",
    str(face_run["root"]),
    "validation",
    str(tmp_path / "ensemble"),
  )
  assert [row["member"] for row in ensemble["members"]] == ["face", "run", "ensemble"]
  assert ensemble["all"]["accuracy"] == pytest.approx(ensemble["members"][0]["accuracy"])  # the same model twice


def test_speech_model_on_tess_and_crema_d_names_compares_in_ekman7(speech_run, tmp_path):
  """RAVDESS files renamed by the TESS and CREMA-D conventions (their real emotion kept): the 8-class model is
  compared in Ekman-7, calm summed into neutral; CREMA-D has no surprise, so it is not compared."""
  recognizer = Recognizer.load(speech_run["bundle"], warmup=False)
  files = sorted(speech_run["root"].glob("Actor_0[12]/*.flac"))
  tess = {
    "neutral": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "fearful": "fear",
    "disgust": "disgust",
    "surprised": "ps",
  }
  crema = {"neutral": "NEU", "happy": "HAP", "sad": "SAD", "angry": "ANG", "fearful": "FEA", "disgust": "DIS"}
  words = iter(["back", "bar", "base", "bath", "bean", "beg", "bite", "boat", "bone", "book", "bought", "burn"] * 9)
  for corpus, mapping in (("tess", tess), ("crema_d", crema)):
    root = tmp_path / corpus
    root.mkdir()
    chosen = []
    for number, file in enumerate(files):
      emotion = labels_lib.RAVDESS_CLASSES[int(file.name.split("-")[2]) - 1]
      if emotion in mapping:
        name = (
          f"OAF_{next(words)}{number}_{mapping[emotion]}.flac"
          if corpus == "tess"
          else f"10{10 + number:02d}_DFA_{mapping[emotion]}_XX.flac"
        )
        (root / name).symlink_to(file)
        chosen.append((file, labels_lib.EKMAN7.index(labels_lib.ekman7_name(emotion))))
    report, _ = scoring.evaluate_models(
      [str(speech_run["bundle"])],
      corpus,
      str(root),
      "all",
      str(tmp_path / "out"),
      {"cache_dir": str(tmp_path / "cache")},
    )
    mapping_report = report["label_mapping"]
    expected_classes = [c for c in labels_lib.EKMAN7 if corpus == "tess" or c != "surprise"]
    assert mapping_report["compared_classes"] == expected_classes
    assert mapping_report["model_classes_to_ekman7"]["calm"] == ["neutral"]
    assert mapping_report["model_only_classes"] == ([] if corpus == "tess" else ["surprise"])
    # By hand: the model's probabilities summed into Ekman classes, the compared ones' argmax.
    compared = [labels_lib.EKMAN7.index(c) for c in expected_classes]
    ekman = labels_lib.single_label_space(recognizer.class_names).ekman_matrix
    probabilities = (
      np.array(
        [
          [r.speech.probabilities[c] for c in recognizer.class_names]
          for r in recognizer.predict_batch(audios=[f for f, _ in chosen])
        ]
      )
      @ ekman
    )
    predicted = np.array(compared)[probabilities[:, compared].argmax(1)]
    truth = np.array([label for _, label in chosen])
    assert report["all"]["accuracy"] == pytest.approx((predicted == truth).mean(), abs=1e-9)
    assert report["all"]["num_examples"] == len(chosen)


def test_face_model_on_ck_plus_folders_reads_each_sequences_apex(face_run, tmp_path):
  """A CK+ tree built from FER2013 validation faces: each sequence's last frame is its apex; contempt (code 2) has
  no Ekman class and is dropped by the reader."""
  root = tmp_path / "ckplus"
  codes = {"angry": 1, "disgust": 3, "fear": 4, "happy": 5, "sad": 6, "surprise": 7, "neutral": 0}
  expected = []
  for number, (folder, code) in enumerate(codes.items()):
    subject = f"S{100 + number}"
    frames = sorted((face_run["root"] / "validation" / folder).glob("*.jpg"))
    sequence = root / "cohn-kanade-images" / subject / "001"
    sequence.mkdir(parents=True)
    for index, frame in enumerate(frames[:3]):
      shutil.copy(frame, sequence / f"{subject}_001_{index:08d}.png")
    (root / "Emotion" / subject / "001").mkdir(parents=True)
    (root / "Emotion" / subject / "001" / f"{subject}_001_00000002_emotion.txt").write_text(f"   {code:.7e}\n")
    expected.append((frames[2], labels_lib.EKMAN7.index(labels_lib.ekman7_name(folder))))
  contempt = root / "cohn-kanade-images" / "S200" / "001"
  contempt.mkdir(parents=True)
  shutil.copy(expected[0][0], contempt / "S200_001_00000000.png")
  (root / "Emotion" / "S200" / "001").mkdir(parents=True)
  (root / "Emotion" / "S200" / "001" / "S200_001_00000000_emotion.txt").write_text("   2.0000000e+00\n")
  report, _ = scoring.evaluate_models(
    [str(face_run["bundle"])], "clips", str(root), "all", str(tmp_path / "out"), {"face_crop": "none", "num_folds": 2}
  )
  assert report["all"]["num_examples"] == 7 and "label_mapping" not in report  # clips are read in Ekman-7 already
  # The apex frame, resized by the clip reader (OpenCV, area), scored as the model scores it.
  recognizer = Recognizer.load(face_run["bundle"], warmup=False)
  import cv2

  images = [
    cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (48, 48), interpolation=cv2.INTER_AREA) for f, _ in expected
  ]
  predicted = [labels_lib.EKMAN7.index(r.faces[0].label) for r in recognizer.predict_batch(faces=images, detect="none")]
  assert report["all"]["accuracy"] == pytest.approx(np.mean([p == y for p, (_, y) in zip(predicted, expected)]))


def test_goemotions_model_on_a_labelled_csv_compares_in_ekman7(text_run, tmp_path):
  corpus = tmp_path / "corpus.csv"
  corpus.write_text(
    "sentence,emotion,source\n"
    '"What a lovely surprise, thank you!",joy,a\n'
    "I am furious about this,angry,b\n"
    "This is disgusting,disgust,c\n"
    "I love you,love,d\n"
    ",sadness,e\n"
    "I feel so alone today,sad,f\n"
  )
  report, out = scoring.evaluate_models(
    [str(text_run["bundle"])],
    "labelled_text",
    str(corpus),
    "all",
    str(tmp_path / "out"),
    {"text_column": "sentence", "label_column": "emotion"},
  )
  mapping = report["label_mapping"]
  assert report["all"]["num_examples"] == 4  # love has no Ekman class and the empty text is skipped: both named
  assert mapping["compared_classes"] == ["anger", "disgust", "happiness", "sadness"]
  assert mapping["model_classes_to_ekman7"]["joy"] == ["happiness"]
  assert "label mapping" in (out / "report.md").read_text()
  with pytest.raises(ValueError, match="no text column 'text'"):
    scoring.evaluate_models([str(text_run["bundle"])], "labelled_text", str(corpus), "all", str(tmp_path / "x"))


# ----------------------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------------------
def test_predict_and_evaluate_commands(face_run, capsys, tmp_path):
  from emojax import cli

  faces = sorted(face_run["root"].glob("validation/happy/*.jpg"))[:2]
  argv = [
    "emojax",
    "predict",
    "--model",
    str(face_run["bundle"]),
    "--face",
    str(faces[0]),
    "--face",
    str(faces[1]),
    "--detect",
    "none",
  ]
  assert cli.dispatch(argv + ["--json"]) == 0
  printed = json.loads(capsys.readouterr().out)
  assert [p["input"]["face"] for p in printed] == [str(f) for f in faces] and printed[0]["faces"][0]["label"]
  assert cli.dispatch(argv) == 0
  table = capsys.readouterr().out
  assert "face 1 at [0, 0, 48, 48]:" in table and "Ekman-7 (single modality (face)" in table
  (tmp_path / "fake.jpg").write_text("no picture")
  fake = ["emojax", "predict", "--model", str(face_run["bundle"]), "--face", str(tmp_path / "fake.jpg")]
  assert cli.dispatch(fake) == 2
  error = capsys.readouterr().err
  assert error.startswith("emojax predict: error: face: not an image") and error.count("\n") == 1
  assert (
    cli.dispatch(
      [
        "emojax",
        "evaluate",
        "--model",
        str(face_run["bundle"]),
        "--data",
        "fer2013",
        "--root",
        str(tmp_path / "nowhere"),
      ]
    )
    == 2
  )
  assert "FER2013 root" in capsys.readouterr().err
  assert cli.dispatch(["emojax", "predict", "--model", str(tmp_path)]) == 2
  assert "nothing to predict" in capsys.readouterr().err


def test_training_command_prints_one_line_for_a_wrong_data_layout(tmp_path):
  import subprocess
  import sys

  from tests.conftest import REPO

  (tmp_path / "validation").mkdir()  # no class folders in it
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "emojax.main",
      "--config",
      "configs/face_cnn.py",
      f"--config.data.root={tmp_path}",
      f"--workdir={tmp_path / 'run'}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "emojax: error: " in result.stderr and "should hold one folder per class" in result.stderr


def test_readers_follow_symlinked_folders(ravdess_root, tmp_path):
  from emojax.data import speech

  (tmp_path / "Actor_01").symlink_to(ravdess_root / "Actor_01")
  (tmp_path / "again").symlink_to(tmp_path)  # a cycle ends
  assert len(speech.find_files(tmp_path, "ravdess")) == 60


def test_export_command_prints_the_bundle_and_how_to_use_it(face_run, capsys, tmp_path):
  from emojax import cli

  out = tmp_path / "exported"
  assert cli.dispatch(["emojax", "export-model", "--workdir", str(face_run["workdir"]), "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  assert f"Bundle: {out}" in printed and "Recognizer.load" in printed and f"emojax predict --model {out}" in printed
  assert bundle.read_manifest(out)["source"]["step"] == bundle.read_manifest(face_run["bundle"])["source"]["step"]
