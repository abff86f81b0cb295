"""`emojax serve`: the REST API, micro-batching, limits, the fuzz list and the WebSocket streams, against one
server on 127.0.0.1 (conftest's `live_server`: the face, speech and text bundles trained on real FER2013,
RAVDESS and GoEmotions rows), and the synthetic demo's fusion bundle through FastAPI's test client."""

import base64
import concurrent.futures
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED_DATA
from tests.serve_support import (
  SENTENCE,
  face_photo,
  fer_face,
  fuzz_cases,
  good_request,
  ravdess_clip,
  samples_of,
  wav_bytes,
)

httpx = pytest.importorskip("httpx", reason="the serve extra is not installed (pip install -e '.[serve]')")
pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
MISSING = [name for name in ("fer2013", "ravdess", "goemotions") if not (SHARED_DATA / name).is_dir()]
pytestmark = [
  pytest.mark.slow,
  pytest.mark.skipif(bool(MISSING), reason=f"real data missing under {SHARED_DATA}: {MISSING}"),
]


@pytest.fixture(scope="module")
def inputs():
  face = fer_face(SHARED_DATA)
  clip = ravdess_clip(SHARED_DATA)
  return {"face": face, "photo": face_photo(face), "clip": clip, "flac": clip.read_bytes()}


@pytest.fixture(scope="module")
def client(live_server):
  with httpx.Client(base_url=live_server.url, timeout=120) as session:
    yield session


def test_health_model_page_and_offline_docs(client):
  assert client.get("/healthz").json()["status"] == "ok"
  model = client.get("/v1/model").json()
  assert model["modalities"] == ["face", "speech", "text"] == model["page_modalities"]
  assert model["inputs"] == {"face": "image", "speech": "audio", "text": "text"}
  assert model["audio"] == {"sample_rate": 16000, "window_seconds": 3.0, "hop_seconds": 1.5}
  face, speech, text = model["models"]
  assert face["classes"] == ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
  assert len(text["classes"]) == 28 and text["multi_label"] and speech["dataset"] == "ravdess"
  assert face["metrics"]["num_examples"] == 28 and "accuracy" in face["metrics"]
  page = client.get("/").text
  assert 'src="/static/app.js"' in page and "http" not in page.replace('href="/docs"', "")
  docs = client.get("/docs").text
  assert "/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs and '"validatorUrl": null' in docs
  assert client.get("/swagger/swagger-ui-bundle.js").status_code == 200
  schema = client.get("/openapi.json").json()
  assert schema["openapi"] == "3.0.3" and "PredictRequest" in schema["components"]["schemas"]
  assert set(schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]) == {
    "multipart/form-data",
    "application/json",
  }


def test_predict_answers_what_the_recognizers_say_multipart_or_json(client, live_server, inputs):
  files = {
    "image": ("face.jpg", inputs["photo"], "image/jpeg"),
    "audio": ("clip.flac", inputs["flac"], "audio/flac"),
    "text": (None, SENTENCE.encode()),
  }
  result = client.post("/v1/predict", files=files).json()
  engine = live_server.engine
  expected = {
    m: engine.by_modality[m].predict(**{k: v}).to_dict()
    for m, k, v in (("face", "face", inputs["photo"]), ("speech", "audio", inputs["flac"]), ("text", "text", SENTENCE))
  }
  assert result["faces"] == expected["face"]["faces"] and len(result["faces"]) == 1
  assert result["speech"] == expected["speech"]["speech"] and result["texts"] == expected["text"]["texts"]
  # Late fusion: the mean of the three Ekman-7 distributions, equal weights.
  mean = np.mean([list(expected[m]["fused"]["probabilities"].values()) for m in expected], axis=0)
  assert list(result["fused"]["probabilities"].values()) == pytest.approx(mean, abs=2e-6)
  assert result["fused"]["weights"] == {"face": 0.333333, "speech": 0.333333, "text": 0.333333}
  as_json = client.post(
    "/v1/predict",
    json={
      "image": base64.b64encode(inputs["photo"]).decode(),
      "audio": base64.b64encode(inputs["flac"]).decode(),
      "text": SENTENCE,
    },
  )
  assert as_json.json() == result
  crop = client.post(
    "/v1/predict", files={"image": ("f.jpg", inputs["face"].read_bytes(), "image/jpeg"), "detect": (None, b"none")}
  ).json()
  assert crop["faces"][0]["box"] == [0, 0, 48, 48]


def test_concurrent_requests_share_batches_and_batch_route_keeps_order(client, live_server, inputs):
  before = client.get("/healthz").json()["batcher"]
  texts = [f"{SENTENCE} ({i})" for i in range(12)]
  with concurrent.futures.ThreadPoolExecutor(12) as pool:
    answers = list(pool.map(lambda t: client.post("/v1/predict", json={"text": t}), texts))
  assert all(a.status_code == 200 for a in answers)
  after = client.get("/healthz").json()["batcher"]
  assert after["items"] - before["items"] == 12 and after["batches"] - before["batches"] < 12  # some shared
  alone = live_server.engine.by_modality["text"].predict(text=texts[5]).texts[0].probabilities
  assert answers[5].json()["texts"][0]["probabilities"] == pytest.approx(alone, abs=1e-5)
  items = [{"text": texts[0]}, {"image": base64.b64encode(inputs["photo"]).decode()}, {"text": texts[1]}]
  results = client.post("/v1/predict/batch", json={"items": items}).json()["results"]
  assert [r["texts"][0]["text"] if r["texts"] else "face" for r in results] == [texts[0], "face", texts[1]]
  assert results[1]["faces"] == live_server.engine.by_modality["face"].predict(face=inputs["photo"]).to_dict()["faces"]


def test_limits_answer_413_and_422(client, inputs):
  long = np.tile(samples_of(inputs["clip"]), 10)  # about 35 s; the server reads 20
  answer = client.post("/v1/predict", files={"audio": ("long.wav", wav_bytes(long, 16000), "audio/wav")})
  assert answer.status_code == 413 and "at most 20 s" in answer.json()["error"]
  answer = client.post("/v1/predict", json={"text": "x" * 2001})
  assert answer.status_code == 413 and "at most 2000" in answer.json()["error"]
  face = Image.open(inputs["face"]).resize((120, 120))
  five = Image.new("L", (640, 480), 110)
  for x, y in ((20, 20), (260, 20), (500, 20), (20, 300), (260, 300)):
    five.paste(face.crop((0, 0, min(120, 640 - x), 120)), (x, y))
  out = io.BytesIO()
  five.save(out, "PNG")
  answer = client.post("/v1/predict", files={"image": ("five.png", out.getvalue(), "image/png")})
  assert answer.status_code == 422 and "5 faces found" in answer.json()["error"]
  answer = client.post("/v1/predict/batch", json={"items": [{"text": "hi"}] * 33})
  assert answer.status_code == 413


def test_fuzz_list_gets_4xx_json_and_the_server_answers_next(client, inputs):
  wav = wav_bytes(samples_of(inputs["clip"]), 16000)
  method, path, good = good_request(inputs["photo"])
  for name, case_method, case_path, kwargs in fuzz_cases(inputs["photo"], wav):
    answer = client.request(case_method, case_path, **kwargs)
    assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text[:200])
    body = answer.json()
    assert body["status"] == answer.status_code and len(body["error"]) > 10, name
    assert client.request(method, path, **good).status_code == 200, f"after {name}"


def test_full_queue_answers_503_with_retry_after(live_server, inputs):
  from fastapi.testclient import TestClient

  from emojax.serve.app import create_app
  from emojax.serve.batching import MicroBatcher

  release = threading.Event()

  def held(items):
    release.wait(30)
    return live_server.engine.predict(items)

  app = create_app(live_server.engine, batcher=MicroBatcher(held, max_batch=8, max_wait_s=0.001, max_queue=1))
  with TestClient(app) as local, concurrent.futures.ThreadPoolExecutor(1) as pool:
    first = pool.submit(local.post, "/v1/predict", json={"text": SENTENCE})
    while app.state.batcher.stats()["queued_items"] < 1:
      pass
    refused = local.post("/v1/predict", json={"text": SENTENCE})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1" and "retry" in refused.json()["error"]
    release.set()
    assert first.result(timeout=60).status_code == 200
    assert local.post("/v1/predict", json={"text": SENTENCE}).status_code == 200


def test_webcam_stream_labels_each_frame_smoothed_over_time(live_server, inputs):
  from websockets.sync.client import connect

  url = live_server.url.replace("http", "ws") + "/v1/stream/face?smoothing=0.5"
  with connect(url) as socket:
    answers = []
    for _ in range(4):
      socket.send(inputs["photo"])
      answers.append(json.loads(socket.recv(timeout=60)))
    socket.send(b"garbage")
    assert json.loads(socket.recv(timeout=60))["status"] == 422
    socket.send("text, not a frame")
    assert json.loads(socket.recv(timeout=60))["status"] == 422
    socket.send(inputs["photo"])
    assert len(json.loads(socket.recv(timeout=60))["faces"]) == 1  # the stream goes on
  raw = answers[0]["faces"][0]["probabilities"]
  assert answers[0]["faces"][0]["smoothed"] == pytest.approx(raw, abs=1e-6)
  ema = dict(raw)
  for answer in answers[1:]:
    face = answer["faces"][0]
    ema = {k: 0.5 * p + 0.5 * ema[k] for k, p in face["probabilities"].items()}
    assert face["smoothed"] == pytest.approx(ema, abs=1e-5)
    assert face["smoothed_label"] == max(ema, key=ema.get) and answer["server_ms"] > 0


def test_microphone_stream_answers_each_hop_over_a_sliding_window(live_server, inputs):
  from websockets.sync.client import connect

  samples = samples_of(inputs["clip"])
  url = live_server.url.replace("http", "ws") + "/v1/stream/speech?sample_rate=16000"
  with connect(url) as socket:
    answers = []
    for start in range(0, len(samples) - 16000, 16000):
      socket.send(samples[start : start + 16000].astype("<f4").tobytes())
      answers.append(json.loads(socket.recv(timeout=60)))
  assert [a["window"]["end"] for a in answers] == [float(i + 1) for i in range(len(answers))]
  assert "too short" in answers[0]["error"] and all("speech" in a for a in answers[1:])  # 1 s, mostly silence
  assert answers[-1]["window"]["end"] - answers[-1]["window"]["start"] == 3.0
  window = samples[int(answers[-1]["window"]["start"] * 16000) : int(answers[-1]["window"]["end"] * 16000)]
  alone = live_server.engine.by_modality["speech"].predict(audio=window, sample_rate=16000).speech
  assert answers[-1]["speech"]["probabilities"] == pytest.approx(alone.probabilities, abs=1e-5)


def test_demo_fusion_bundle_is_served_with_its_synthetic_inputs(fusion_bundle):
  from fastapi.testclient import TestClient

  from emojax.data import synthetic
  from emojax.inference import Recognizer
  from emojax.serve.app import create_app
  from emojax.serve.engine import Engine

  recognizer = Recognizer.load(fusion_bundle, batch_sizes=(1,))
  with TestClient(create_app(Engine([recognizer]))) as local:
    model = local.get("/v1/model").json()
    assert model["page_modalities"] == ["face"] and model["fusion"] == "end_to_end"
    face = io.BytesIO()
    Image.fromarray(synthetic.draw_face(3, np.random.default_rng(0))).save(face, "PNG")
    frames = np.random.default_rng(1).standard_normal((20, 24)).round(3)
    body = {
      "image": base64.b64encode(face.getvalue()).decode(),
      "detect": "none",
      "audio_features": frames.tolist(),
      "token_ids": [9, 12, 30],
    }
    fused = local.post("/v1/predict", json=body).json()["fused"]
    expected = recognizer.predict(
      face=face.getvalue(), audio=frames.astype(np.float32), text=np.array([9, 12, 30]), detect="none"
    ).fused
    assert fused["modalities"] == ["face", "speech", "text"] and fused["probabilities"] == pytest.approx(
      expected.probabilities, abs=1e-5
    )
    answer = local.post("/v1/predict", json={"text": SENTENCE})
    assert answer.status_code == 422 and "token ids" in answer.json()["error"]


def test_serve_command_is_registered_and_refuses_a_missing_model(tmp_path, capsys):
  from emojax import cli

  assert cli.SUBCOMMANDS["serve"][0] == "emojax.serve.cli:main"
  assert cli.dispatch(["emojax", "serve", "--model", str(tmp_path / "absent")]) == 2
  assert "No model at" in capsys.readouterr().err


def test_transcribe_gives_the_words_to_the_text_model(client, inputs):
  """A recording alone with transcribe=true: Whisper's words come back with their times and the GoEmotions model
  scores them, so the fused result hears the voice and the words."""
  pytest.importorskip("faster_whisper")
  from emojax import speech_to_text

  files = {"audio": ("clip.flac", inputs["flac"], "audio/flac"), "transcribe": (None, b"true")}
  result = client.post("/v1/predict", files=files).json()
  reference = speech_to_text.ravdess_reference(inputs["clip"].name)
  assert speech_to_text.word_errors(reference, result["transcript"]["text"]) == (0, 6)
  assert [w["start"] <= w["end"] for w in result["transcript"]["words"]] == [True] * 6
  assert result["texts"][0]["text"] == result["transcript"]["text"]
  assert set(result["fused"]["weights"]) == {"speech", "text"}
  assert client.post("/v1/predict", files={**files, "transcribe": (None, b"yes")}).status_code == 422
  without = client.post("/v1/predict", files={"audio": files["audio"]}).json()
  assert without.get("transcript") is None and without.get("texts") is None
