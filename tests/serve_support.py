"""What the serve tests and benchmarks/serve.py share: real inputs from ../shared/data, a server on a thread, and
the malformed requests of the fuzz list."""

import base64
import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

SENTENCE = "I can't believe it worked, thank you so much!"


# ----------------------------------------------------------------------------------------------
# Real inputs.
# ----------------------------------------------------------------------------------------------
def fer_face(data: Path, emotion: str = "happy") -> Path:
  """The first FER2013 validation face of a class (a 48x48 grayscale JPEG)."""
  return sorted((data / "fer2013" / "validation" / emotion).glob("*.jpg"))[0]


def face_photo(face_file: Path, size=(640, 480), at=(220, 120), side=200, fmt="JPEG") -> bytes:
  """The face pasted at `side` pixels into a gray picture of `size` (the detector finds it at this scale)."""
  canvas = Image.new("L", size, 110)
  canvas.paste(Image.open(face_file).resize((side, side), Image.BILINEAR), at)
  out = io.BytesIO()
  canvas.save(out, fmt, quality=90)
  return out.getvalue()


def ravdess_clip(data: Path, actor: str = "01", emotion: str = "03") -> Path:
  """A RAVDESS speech recording (16 kHz FLAC) of an actor and emotion code (03 = happy)."""
  return sorted((data / "ravdess" / f"Actor_{actor}").glob(f"03-01-{emotion}-*.flac"))[0]


def samples_of(path: Path, rate: int = 16000) -> np.ndarray:
  from emojax.data import audio

  return audio.read_audio(str(path), rate)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
  out = io.BytesIO()
  soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
  return out.getvalue()


def write_y4m(path: Path, frame: np.ndarray, frames: int = 30, fps: int = 30) -> Path:
  """A still grayscale picture [H, W] as a Y4M video (4:2:0, neutral chroma): a fake webcam for Chromium."""
  height, width = frame.shape
  chroma = np.full((height // 2) * (width // 2), 128, np.uint8).tobytes()
  with open(path, "wb") as out:
    out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
    for _ in range(frames):
      out.write(b"FRAME\n" + np.ascontiguousarray(frame, np.uint8).tobytes() + chroma + chroma)
  return path


# ----------------------------------------------------------------------------------------------
# A server on a thread.
# ----------------------------------------------------------------------------------------------
def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class ServerThread:
  """uvicorn serving `app` on 127.0.0.1 in a daemon thread; `url`; `stop()`."""

  def __init__(self, app, port: int | None = None):
    import uvicorn

    self.port = port or free_port()
    self.url = f"http://127.0.0.1:{self.port}"
    self.server = uvicorn.Server(
      uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", ws_max_size=4 * 2**20)
    )
    self.thread = threading.Thread(target=self.server.run, daemon=True)
    self.thread.start()
    deadline = time.monotonic() + 30
    while not self.server.started:
      if time.monotonic() > deadline or not self.thread.is_alive():
        raise RuntimeError("uvicorn did not start")
      time.sleep(0.05)

  def stop(self) -> None:
    self.server.should_exit = True
    self.thread.join(timeout=10)


# ----------------------------------------------------------------------------------------------
# The fuzz list: (name, method, path, keyword arguments of httpx's request()).
# ----------------------------------------------------------------------------------------------
def fuzz_cases(photo: bytes, recording: bytes) -> list[tuple[str, str, str, dict]]:
  b64 = base64.b64encode
  boundary = "emojaxboundary"
  multipart = f"multipart/form-data; boundary={boundary}"
  broken = (
    f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
    "Content-Type: image/jpeg\r\n\r\n"
  ).encode() + photo[:300]  # no closing boundary
  return [
    (
      "not an image",
      "POST",
      "/v1/predict",
      {"files": {"image": ("notes.jpg", b"this is not a picture", "image/jpeg")}},
    ),
    (
      "truncated JPEG",
      "POST",
      "/v1/predict",
      {"files": {"image": ("cut.jpg", photo[: len(photo) // 2], "image/jpeg")}},
    ),
    ("truncated PNG", "POST", "/v1/predict", {"files": {"image": ("cut.png", _png(photo)[:400], "image/png")}}),
    ("zero-byte image", "POST", "/v1/predict", {"files": {"image": ("empty.jpg", b"", "image/jpeg")}}),
    ("zero-byte audio", "POST", "/v1/predict", {"files": {"audio": ("empty.wav", b"", "audio/wav")}}),
    ("not a recording", "POST", "/v1/predict", {"files": {"audio": ("a.wav", photo, "audio/wav")}}),
    ("50 MB upload", "POST", "/v1/predict", {"files": {"image": ("big.jpg", b"\xff" * (50 * 2**20), "image/jpeg")}}),
    ("wrong content type", "POST", "/v1/predict", {"content": photo, "headers": {"content-type": "image/jpeg"}}),
    ("no content type", "POST", "/v1/predict", {"content": b"{}"}),
    ("broken multipart", "POST", "/v1/predict", {"content": broken, "headers": {"content-type": multipart}}),
    (
      "multipart without boundary",
      "POST",
      "/v1/predict",
      {"content": b"--x\r\n\r\n", "headers": {"content-type": "multipart/form-data"}},
    ),
    ("invalid base64", "POST", "/v1/predict", {"json": {"image": "this is not base64!!"}}),
    (
      "invalid UTF-8 in JSON",
      "POST",
      "/v1/predict",
      {"content": b'{"text": "caf\xe9 \xff"}', "headers": {"content-type": "application/json"}},
    ),
    ("invalid UTF-8 in a form field", "POST", "/v1/predict", {"files": {"text": (None, b"caf\xe9 \xff")}}),
    ("invalid JSON", "POST", "/v1/predict", {"content": b'{"text": ', "headers": {"content-type": "application/json"}}),
    ("100k-character text", "POST", "/v1/predict", {"json": {"text": "so happy " * 11_112}}),
    ("empty text", "POST", "/v1/predict", {"json": {"text": "  \n "}}),
    ("unknown JSON field", "POST", "/v1/predict", {"json": {"text": "hello", "path": "/etc/passwd"}}),
    ("unknown form field", "POST", "/v1/predict", {"files": {"path": (None, b"/etc/passwd")}}),
    ("number where a string belongs", "POST", "/v1/predict", {"json": {"text": 42}}),
    ("list where a string belongs", "POST", "/v1/predict", {"json": {"image": [1, 2, 3]}}),
    ("JSON array body", "POST", "/v1/predict", {"json": [1, 2, 3]}),
    ("nothing given", "POST", "/v1/predict", {"json": {}}),
    ("image sent as a text field", "POST", "/v1/predict", {"files": {"image": (None, b"abc")}}),
    ("bad detect value", "POST", "/v1/predict", {"json": {"image": b64(photo).decode(), "detect": "opencv"}}),
    ("batch of 0 items", "POST", "/v1/predict/batch", {"json": {"items": []}}),
    (
      "batch with a bad item",
      "POST",
      "/v1/predict/batch",
      {"json": {"items": [{"image": b64(photo).decode()}, {"image": b64(b"junk").decode()}]}},
    ),
    ("GET on a POST route", "GET", "/v1/predict", {}),
    ("unknown route", "GET", "/v1/nothing", {}),
  ]


def _png(jpeg: bytes) -> bytes:
  out = io.BytesIO()
  Image.open(io.BytesIO(jpeg)).save(out, "PNG")
  return out.getvalue()


def good_request(photo: bytes) -> tuple[str, str, dict]:
  return "POST", "/v1/predict", {"files": {"image": ("face.jpg", photo, "image/jpeg")}}
