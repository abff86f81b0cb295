"""`emojax serve` on this machine: real-time streams, a bounded load test and the fuzz list, over loopback.

  python benchmarks/serve.py [--face BUNDLE] [--speech BUNDLE] [--text BUNDLE] [--webcam-seconds 20] \
      [--load-seconds 60] [--clients 16] [--json out.json]

The server runs in its own process (as `emojax serve` does) on the face, speech and text models side by side: the
bundles given, or ResidualAttentionCNN width 0.5, the Conformer and the MiniLM classifier with random weights
(the same computation; `benchmarks/inference.py:untrained`). Measured from a client process:
- webcam: 640x480 JPEG frames of a FER2013 face over the WebSocket, two in flight as the page sends them:
  frames/s end to end and per-frame latency p50/p95 (send to labels back); also one frame at a time;
- microphone: 1 s hops of RAVDESS speech at 16 kHz, sent in real time: update latency p50/p95 (hop sent to the
  window's labels back);
- load: `--clients` threads for `--load-seconds`, each sending good requests (a photo, a recording, a sentence,
  JSON) and bad ones (the fuzz list but the 50 MB upload) at random: requests/s, latency p50/p95/p99, answers by
  status code, the server's RSS before and after;
- fuzz: each case of `tests/serve_support.py:fuzz_cases` once: status and message.
Tests never assert on these figures.
"""

import argparse
import collections
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from emojax.config_utils import data_dir  # noqa: E402
from tests import serve_support  # noqa: E402

SHARED = Path(data_dir("fer2013")).parent


# ----------------------------------------------------------------------------------------------
# The server process.
# ----------------------------------------------------------------------------------------------
def serve_child(spec: dict) -> None:
  """Runs in the server process: the engine of the bundles in `spec`, or random-weight models."""
  from emojax import sharding

  sharding.configure_xla_cpu(ynnpack=False)
  import uvicorn

  from benchmarks.inference import untrained
  from emojax.inference import Recognizer
  from emojax.serve.app import create_app
  from emojax.serve.engine import Engine

  factories = {"face": _face_config, "speech": _speech_config, "text": _text_config}
  recognizers = [
    Recognizer.load(spec[m]) if spec.get(m) else Recognizer(untrained(factories[m]()))
    for m in ("face", "speech", "text")
  ]
  app = create_app(Engine(recognizers, ["face", "speech", "text"]))
  uvicorn.run(app, host="127.0.0.1", port=spec["port"], log_level="warning", ws_max_size=4 * 2**20)


def _face_config():
  from configs.face_cnn import get_config

  config = get_config("model=residual_attention")
  config.model.width = 0.5
  return config


def _speech_config():
  from configs.speech import get_config

  return get_config("model=conformer")


def _text_config():
  from configs.text import get_config

  return get_config("")


def start_server(args) -> tuple[subprocess.Popen, str]:
  port = serve_support.free_port()
  spec = {"face": args.face, "speech": args.speech, "text": args.text, "port": port}
  process = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], cwd=REPO)
  url = f"http://127.0.0.1:{port}"
  import httpx

  deadline = time.monotonic() + 600
  while time.monotonic() < deadline:
    try:
      if httpx.get(url + "/healthz", timeout=2).status_code == 200:
        return process, url
    except httpx.HTTPError:
      time.sleep(0.5)
    if process.poll() is not None:
      raise RuntimeError("the server process exited")
  raise RuntimeError("the server did not start in 10 minutes")


def rss_mib(process: subprocess.Popen) -> float:
  import psutil

  return psutil.Process(process.pid).memory_info().rss / 2**20


def percentiles(values, points=(50, 95, 99)) -> dict:
  return {f"p{p}_ms": round(float(np.percentile(values, p)), 2) for p in points} if values else {}


# ----------------------------------------------------------------------------------------------
# Real time.
# ----------------------------------------------------------------------------------------------
def webcam(url: str, photo: bytes, seconds: float, in_flight: int) -> dict:
  """Frames over /v1/stream/face with `in_flight` frames outstanding, as the page streams them."""
  from websockets.sync.client import connect

  latencies, sent = [], collections.deque()
  with connect(url.replace("http", "ws") + "/v1/stream/face") as socket:
    for _ in range(3):  # warm-up
      socket.send(photo)
      socket.recv(timeout=60)
    start = time.perf_counter()
    for _ in range(in_flight):
      sent.append(time.perf_counter())
      socket.send(photo)
    while time.perf_counter() - start < seconds:
      answer = json.loads(socket.recv(timeout=60))
      latencies.append((time.perf_counter() - sent.popleft()) * 1000)
      if "error" in answer or len(answer["faces"]) != 1:
        raise RuntimeError(f"the webcam frame was not labelled: {answer}")
      sent.append(time.perf_counter())
      socket.send(photo)
    elapsed = time.perf_counter() - start
    for _ in sent:
      socket.recv(timeout=60)
  return {
    "frames": len(latencies),
    "frames_per_second": round(len(latencies) / elapsed, 2),
    **percentiles(latencies, (50, 95)),
  }


def microphone(url: str, samples: np.ndarray, hops: int) -> dict:
  """1 s hops over /v1/stream/speech in real time; latency from a hop sent to its window's labels."""
  from websockets.sync.client import connect

  latencies, errors = [], 0
  with connect(url.replace("http", "ws") + "/v1/stream/speech?sample_rate=16000") as socket:
    for index in range(hops):
      hop = samples[(index * 16000) % (len(samples) - 16000) :][:16000]
      started = time.perf_counter()
      socket.send(hop.astype("<f4").tobytes())
      answer = json.loads(socket.recv(timeout=60))
      latency = (time.perf_counter() - started) * 1000
      if index >= 2:  # the first windows are shorter than the clip
        latencies.append(latency)
        errors += "error" in answer
      time.sleep(max(0.0, 1.0 - latency / 1000))
  return {"hops": len(latencies), "errors": errors, **percentiles(latencies, (50, 95))}


# ----------------------------------------------------------------------------------------------
# Load and fuzz.
# ----------------------------------------------------------------------------------------------
def request_mix(photo: bytes, flac: bytes, wav: bytes) -> list[tuple[str, str, str, dict]]:
  """(name, method, path, kwargs): good requests twice as often as bad ones (the fuzz list but the 50 MB upload)."""
  import base64

  good = [
    ("photo", "POST", "/v1/predict", {"files": {"image": ("face.jpg", photo, "image/jpeg")}}),
    ("recording", "POST", "/v1/predict", {"files": {"audio": ("clip.flac", flac, "audio/flac")}}),
    ("sentence", "POST", "/v1/predict", {"json": {"text": serve_support.SENTENCE}}),
    (
      "photo + sentence, JSON",
      "POST",
      "/v1/predict",
      {"json": {"image": base64.b64encode(photo).decode(), "text": serve_support.SENTENCE}},
    ),
  ]
  bad = [case for case in serve_support.fuzz_cases(photo, wav) if case[0] != "50 MB upload"]
  return good * (2 * len(bad) // len(good)) + bad


def load_test(url: str, mix, clients: int, seconds: float) -> dict:
  import httpx

  codes, latencies, lock = collections.Counter(), [], threading.Lock()
  deadline = time.monotonic() + seconds

  def client(seed: int):
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=60) as session:
      while time.monotonic() < deadline:
        _, method, path, kwargs = rng.choice(mix)
        started = time.perf_counter()
        try:
          status = session.request(method, path, **kwargs).status_code
        except httpx.HTTPError as error:
          status = type(error).__name__
        with lock:
          codes[status] += 1
          latencies.append((time.perf_counter() - started) * 1000)

  started = time.perf_counter()
  threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  elapsed = time.perf_counter() - started
  return {
    "clients": clients,
    "seconds": round(elapsed, 1),
    "requests": len(latencies),
    "requests_per_second": round(len(latencies) / elapsed, 1),
    **percentiles(latencies),
    "codes": {str(k): v for k, v in sorted(codes.items(), key=str)},
    "server_errors": sum(v for k, v in codes.items() if not isinstance(k, int) or k >= 500),
  }


def fuzz(url: str, photo: bytes, wav: bytes) -> list[dict]:
  import httpx

  rows = []
  with httpx.Client(base_url=url, timeout=60) as session:
    for name, method, path, kwargs in serve_support.fuzz_cases(photo, wav):
      answer = session.request(method, path, **kwargs)
      good = session.request(*serve_support.good_request(photo)[:2], **serve_support.good_request(photo)[2])
      rows.append(
        {
          "case": name,
          "status": answer.status_code,
          "error": answer.json().get("error"),
          "next_good_request": good.status_code,
        }
      )
  return rows


# ----------------------------------------------------------------------------------------------
def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--face", default="")
  parser.add_argument("--speech", default="")
  parser.add_argument("--text", default="")
  parser.add_argument("--webcam-seconds", type=float, default=20)
  parser.add_argument("--hops", type=int, default=20)
  parser.add_argument("--load-seconds", type=float, default=60)
  parser.add_argument("--clients", type=int, default=16)
  parser.add_argument("--json", default="")
  parser.add_argument("--child", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    return serve_child(json.loads(args.child))
  face = serve_support.fer_face(SHARED)
  photo = serve_support.face_photo(face)
  clip = serve_support.ravdess_clip(SHARED)
  samples = np.concatenate(
    [serve_support.samples_of(f) for f in sorted((SHARED / "ravdess" / "Actor_01").glob("03-01-0*-01-01-*.flac"))[:6]]
  )
  wav = serve_support.wav_bytes(serve_support.samples_of(clip), 16000)
  process, url = start_server(args)
  try:
    figures = {"models": {m: getattr(args, m) or "random weights" for m in ("face", "speech", "text")}}
    figures["webcam"] = webcam(url, photo, args.webcam_seconds, in_flight=2)
    figures["webcam_one_at_a_time"] = webcam(url, photo, args.webcam_seconds / 2, in_flight=1)
    figures["microphone"] = microphone(url, samples, args.hops)
    figures["fuzz"] = fuzz(url, photo, wav)
    figures["rss_mib_before_load"] = round(rss_mib(process), 1)
    figures["load"] = load_test(url, request_mix(photo, clip.read_bytes(), wav), args.clients, args.load_seconds)
    figures["rss_mib_after_load"] = round(rss_mib(process), 1)
    figures["load_second_run"] = load_test(
      url, request_mix(photo, clip.read_bytes(), wav), args.clients, args.load_seconds / 2
    )
    figures["rss_mib_after_second_load"] = round(rss_mib(process), 1)
  finally:
    process.terminate()
    process.wait(timeout=30)
  print(json.dumps(figures, indent=2))
  if args.json:
    Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
  main()
