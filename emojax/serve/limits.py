"""What one request may hold, and the errors a client gets when it holds something else.

Every refusal is an `ApiError`: a 4xx status and one sentence saying what was wrong and what is allowed; the app
answers it as JSON `{"error": message, "status": code}`. Sizes are checked before anything is decoded: the body
by its length as it arrives (`BodyLimit`), pictures by the pixel count in their header, recordings by their
duration in their header.
"""

import dataclasses
import io
import json

import soundfile
from PIL import Image, UnidentifiedImageError


class ApiError(Exception):
  """A request the server refuses: `status` (4xx or 503) and a message for the client."""

  def __init__(self, status: int, message: str, headers: dict | None = None):
    super().__init__(message)
    self.status, self.message, self.headers = status, message, headers or {}


@dataclasses.dataclass
class Limits:
  max_request_bytes: int = 16 * 2**20  # a whole request body
  max_pixels: int = 25_000_000  # width x height of one picture (header), before decoding
  max_audio_seconds: float = 60.0  # one recording (header), before decoding
  max_text_chars: int = 5_000  # one text
  max_faces: int = 16  # faces found in one picture
  max_batch_items: int = 32  # items in one /v1/predict/batch request
  max_stream_frame_bytes: int = 2 * 2**20  # one webcam frame or microphone hop over a WebSocket


def check_text(text: str, limits: Limits, where: str = "text") -> str:
  if len(text) > limits.max_text_chars:
    raise ApiError(413, f"{where}: {len(text)} characters; this server reads at most {limits.max_text_chars}.")
  return text


def check_picture(data: bytes, limits: Limits, where: str = "image") -> bytes:
  """The picture's header: an image PIL reads, of at most `max_pixels` (decompression bombs stop here)."""
  if not data:
    raise ApiError(422, f"{where}: empty (0 bytes); send the picture's file content.")
  try:
    with Image.open(io.BytesIO(data)) as image:
      width, height = image.size
  except UnidentifiedImageError:
    raise ApiError(422, f"{where}: not an image (a JPEG, PNG, WebP, BMP, ... file that PIL reads).") from None
  except (OSError, ValueError, Image.DecompressionBombError) as error:
    raise ApiError(422, f"{where}: unreadable image ({error}).") from None
  if width * height > limits.max_pixels:
    raise ApiError(
      413, f"{where}: {width}x{height} pixels; this server reads pictures of at most {limits.max_pixels:,} pixels."
    )
  return data


def check_recording(data: bytes, limits: Limits, where: str = "audio") -> bytes:
  """The recording's header: a format soundfile reads (WAV, FLAC, OGG, MP3), at most `max_audio_seconds` long."""
  if not data:
    raise ApiError(422, f"{where}: empty (0 bytes); send the recording's file content.")
  try:
    info = soundfile.info(io.BytesIO(data))
  except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as error:
    reason = str(error).rsplit(": ", 1)[-1]  # without the in-memory file's repr
    raise ApiError(422, f"{where}: not a recording soundfile reads (WAV, FLAC, OGG, MP3): {reason}") from None
  if info.duration > limits.max_audio_seconds:
    raise ApiError(
      413, f"{where}: {info.duration:.1f} s; this server reads recordings of at most {limits.max_audio_seconds:g} s."
    )
  return data


def check_faces(result: dict, limits: Limits) -> dict:
  faces = result.get("faces") or []
  if len(faces) > limits.max_faces:
    raise ApiError(
      422, f"image: {len(faces)} faces found; this server labels pictures of at most {limits.max_faces} faces."
    )
  return result


class BodyLimit:
  """ASGI middleware: a request body over `max_bytes` is refused with 413, by its Content-Length before it is
  read, or as soon as a body without one grows past the limit."""

  def __init__(self, app, max_bytes: int):
    self.app, self.max_bytes = app, max_bytes

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    length = dict(scope.get("headers", [])).get(b"content-length")
    if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
      return await self._refuse(send, length.decode("latin-1"))
    received, exceeded = 0, False

    async def counted():
      # Past the limit the app sees the body end there; `guarded` then answers 413 instead of whatever it says.
      nonlocal received, exceeded
      message = await receive()
      if message["type"] == "http.request":
        received += len(message.get("body", b""))
        if received > self.max_bytes:
          exceeded = True
          return {"type": "http.request", "body": b"", "more_body": False}
      return message

    async def guarded(message):
      if not exceeded:
        return await send(message)
      if message["type"] == "http.response.start":
        await self._refuse(send, f"more than {self.max_bytes}")

    await self.app(scope, counted, guarded)

  async def _refuse(self, send, length: str) -> None:
    body = json.dumps(
      {
        "error": f"request body of {length} bytes; this server reads at most {self.max_bytes} bytes per request",
        "status": 413,
      }
    ).encode()
    await send(
      {
        "type": "http.response.start",
        "status": 413,
        "headers": [
          (b"content-type", b"application/json"),
          (b"content-length", str(len(body)).encode()),
          (b"connection", b"close"),
        ],
      }
    )
    await send({"type": "http.response.body", "body": body})
