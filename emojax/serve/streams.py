"""Real time over WebSockets: webcam frames and microphone audio in, labels out, through the same micro-batcher.

`/v1/stream/face`: each binary message is one encoded frame (JPEG or PNG); each answer the frame's faces, boxes
and labels, with probabilities smoothed over time per face (an exponential moving average of each face matched
to the nearest face of the previous frame) and the server's milliseconds for the frame.

`/v1/stream/speech?sample_rate=R`: binary messages are float32 mono samples at R Hz (the page sends 1 s hops);
the server keeps the last window of the speech model's clip length and answers each hop with the window's
prediction, placed on the stream's own clock (seconds since the first sample).

A bad frame or a silent window is answered with `{"error": ..., "status": ...}` and the stream goes on.
"""

import dataclasses
import time

import numpy as np

from emojax.inference import InputError
from emojax.serve.engine import Item
from emojax.serve.limits import ApiError, Limits, check_faces, check_picture

MAX_SAMPLE_RATE = 48_000


@dataclasses.dataclass
class _Track:
  center: tuple[float, float]
  side: float
  probabilities: dict[str, float]


class FaceSmoother:
  """Per-face EMA of class probabilities across frames: `alpha` weighs the newest frame (1 = no smoothing). A face
  takes over the track of the previous frame's face whose centre is nearest, within one face width."""

  def __init__(self, alpha: float = 0.4):
    self.alpha = alpha
    self.tracks: list[_Track] = []

  def update(self, faces: list[dict]) -> list[dict]:
    tracks, free = [], list(self.tracks)
    for face in faces:
      x, y, w, h = face["box"]
      center, side = (x + w / 2, y + h / 2), max(w, h)
      previous = min(free, key=lambda t: _distance(t.center, center), default=None)
      probabilities = face["probabilities"]
      if previous is not None and _distance(previous.center, center) <= max(side, previous.side):
        free.remove(previous)
        probabilities = {
          k: self.alpha * p + (1 - self.alpha) * previous.probabilities.get(k, p) for k, p in probabilities.items()
        }
      tracks.append(_Track(center, side, probabilities))
      face["smoothed"] = {k: round(p, 6) for k, p in probabilities.items()}
      face["smoothed_label"] = max(probabilities, key=probabilities.get)
    self.tracks = tracks
    return faces


def _distance(a, b) -> float:
  return float(np.hypot(a[0] - b[0], a[1] - b[1]))


async def face_frame(data: bytes, smoother: FaceSmoother, submit, limits: Limits) -> dict:
  """One webcam frame -> its faces with smoothed labels (or an error to send back)."""
  started = time.perf_counter()
  try:
    _check_size(data, limits)
    check_picture(data, limits, "frame")
    (result,) = await submit([Item(face=data)])
    if isinstance(result, InputError):
      raise ApiError(422, f"frame: {result}")
    answer = check_faces(result.to_dict(), limits)
  except ApiError as error:
    return {"error": error.message, "status": error.status}
  smoother.update(answer.get("faces") or [])
  answer["server_ms"] = round((time.perf_counter() - started) * 1000, 2)
  return answer


class SpeechWindow:
  """The last `window_seconds` of a microphone stream at `sample_rate`, and the stream's clock."""

  def __init__(self, sample_rate: int, window_seconds: float):
    if not 8000 <= sample_rate <= MAX_SAMPLE_RATE:
      raise ApiError(422, f"sample_rate={sample_rate}; send 8000 to {MAX_SAMPLE_RATE} Hz mono float32 samples.")
    self.sample_rate = sample_rate
    self.capacity = int(round(window_seconds * sample_rate))
    self.samples = np.zeros(0, np.float32)
    self.received = 0

  def add(self, data: bytes) -> None:
    if len(data) % 4:
      raise ApiError(422, f"hop of {len(data)} bytes: send whole float32 samples (4 bytes each).")
    hop = np.frombuffer(data, "<f4")
    if not np.isfinite(hop).all():
      raise ApiError(422, "hop holds NaN or infinite samples.")
    self.received += len(hop)
    self.samples = np.concatenate([self.samples, hop])[-self.capacity :]

  @property
  def end_seconds(self) -> float:
    return self.received / self.sample_rate


async def speech_hop(data: bytes, window: SpeechWindow, submit, limits: Limits) -> dict:
  """One microphone hop -> the prediction of the window ending with it (or an error), with the window's place on
  the stream's clock."""
  started = time.perf_counter()
  try:
    _check_size(data, limits)
    window.add(data)
    (result,) = await submit([Item(audio=window.samples.copy(), sample_rate=window.sample_rate)])
    if isinstance(result, InputError):
      raise ApiError(422, f"window: {result}")
    answer = result.to_dict()
  except ApiError as error:
    answer = {"error": error.message, "status": error.status}
  answer["window"] = {
    "start": round(window.end_seconds - len(window.samples) / window.sample_rate, 3),
    "end": round(window.end_seconds, 3),
  }
  answer["server_ms"] = round((time.perf_counter() - started) * 1000, 2)
  return answer


def _check_size(data: bytes, limits: Limits) -> None:
  if len(data) > limits.max_stream_frame_bytes:
    raise ApiError(
      413, f"message of {len(data)} bytes; a stream message holds at most {limits.max_stream_frame_bytes} bytes."
    )
