"""Request bodies -> `engine.Item`s: multipart forms and JSON with base64, parsed in memory, checked strictly.

Multipart (`POST /v1/predict`): file parts `image` and `audio`, text parts `text`, `detect` and `transcribe`
(true/false). JSON: an object
with `image` and `audio` as base64 (a `data:...;base64,` prefix is accepted), `text` a string, `detect`; for a
bundle trained on the synthetic demo tuples `audio_features` ([frames, bins] numbers) and `token_ids`.
Unknown fields, repeated fields, numbers where strings belong, invalid UTF-8 or base64 are refused with a 4xx
naming the field. Uploads are held in memory (the body is at most `Limits.max_request_bytes`): nothing is
written to disk, nothing is read from a path, nothing is unpickled.
"""

import base64
import binascii
import json
from typing import Literal

import numpy as np
import pydantic
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from emojax.serve.engine import Item
from emojax.serve.limits import ApiError, Limits, check_picture, check_recording, check_text

FILE_FIELDS = ("image", "audio")
TEXT_FIELDS = ("text", "detect", "transcribe")


class PredictRequest(pydantic.BaseModel):
  """One input as JSON. Give the modalities the model reads (GET /v1/model lists them)."""

  model_config = pydantic.ConfigDict(extra="forbid", strict=True)
  image: str | None = pydantic.Field(None, description="a picture file (JPEG, PNG, ...), base64")
  audio: str | None = pydantic.Field(None, description="a recording file (WAV, FLAC, OGG, MP3), base64")
  text: str | None = pydantic.Field(None, description="a sentence")
  detect: Literal["haar", "none"] = pydantic.Field(
    "haar", description="haar: find faces in the picture; none: the picture is one aligned face crop"
  )
  transcribe: bool = pydantic.Field(
    False,
    description="also transcribe the audio (Whisper base): its words and timings in `transcript`, and the "
    "text model's input when no text is given",
  )
  audio_features: list[list[float]] | None = pydantic.Field(
    None, description="demo bundle only: the speech input as a feature matrix [frames, bins]"
  )
  token_ids: list[int] | None = pydantic.Field(None, description="demo bundle only: the text input as token ids")


class BatchRequest(pydantic.BaseModel):
  model_config = pydantic.ConfigDict(extra="forbid", strict=True)
  items: list[PredictRequest] = pydantic.Field(description="one entry per input; each gets its own result")


# ----------------------------------------------------------------------------------------------
# JSON.
# ----------------------------------------------------------------------------------------------
def json_body(body: bytes, model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
  if not body:
    raise ApiError(400, "empty body: send a JSON object (GET /docs shows the fields).")
  try:
    value = json.loads(body)
  except UnicodeDecodeError as error:
    raise ApiError(400, f"the body is not valid UTF-8 ({error.reason} at byte {error.start}).") from None
  except json.JSONDecodeError as error:
    raise ApiError(
      400, f"the body is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})."
    ) from None
  try:
    return model.model_validate(value)
  except pydantic.ValidationError as error:
    raise ApiError(422, validation_message(error.errors())) from None


def validation_message(errors) -> str:
  """pydantic's errors as one line: `field: what is wrong; ...` (the first five)."""
  parts = []
  for error in list(errors)[:5]:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    parts.append(f"{where}: {error.get('msg', 'invalid')}")
  return "; ".join(parts)


def item_from_json(request: PredictRequest, limits: Limits, where: str = "") -> Item:
  item = Item(detect=request.detect, transcribe=request.transcribe)
  if request.image is not None:
    item.face = check_picture(_base64(request.image, f"{where}image"), limits, f"{where}image")
  if request.audio is not None and request.audio_features is not None:
    raise ApiError(422, f"{where}audio and audio_features: give one speech input.")
  if request.audio is not None:
    item.audio = check_recording(_base64(request.audio, f"{where}audio"), limits, f"{where}audio")
  if request.audio_features is not None:
    item.audio = _matrix(request.audio_features, f"{where}audio_features")
  if request.text is not None and request.token_ids is not None:
    raise ApiError(422, f"{where}text and token_ids: give one text input.")
  if request.text is not None:
    item.text = check_text(request.text, limits, f"{where}text")
  if request.token_ids is not None:
    item.text = np.asarray(request.token_ids, np.int64)
  return item


def _base64(value: str, where: str) -> bytes:
  if value.startswith("data:") and "," in value:
    value = value.split(",", 1)[1]
  try:
    return base64.b64decode(value, validate=True)
  except (binascii.Error, ValueError) as error:
    raise ApiError(422, f"{where}: not valid base64 ({error}); send the file's bytes base64-encoded.") from None


def _matrix(rows: list[list[float]], where: str) -> np.ndarray:
  if len({len(row) for row in rows}) > 1:
    raise ApiError(422, f"{where}: rows of different lengths; give a [frames, bins] matrix.")
  return np.asarray(rows, np.float32)


# ----------------------------------------------------------------------------------------------
# Multipart.
# ----------------------------------------------------------------------------------------------
def multipart_item(body: bytes, content_type: str, limits: Limits) -> Item:
  parts = parse_multipart(body, content_type)
  item = Item()
  for name, (data, is_file) in parts.items():
    if name in FILE_FIELDS and not is_file:
      raise ApiError(422, f"{name}: send it as a file part (with a filename), not a text field.")
    if name == "image":
      item.face = check_picture(data, limits, "image")
    elif name == "audio":
      item.audio = check_recording(data, limits, "audio")
    else:
      value = _utf8(data, name)
      if name == "text":
        item.text = check_text(value, limits)
      elif name == "transcribe":
        if value not in ("true", "false"):
          raise ApiError(422, f"transcribe: {value[:40]!r}; use 'true' or 'false'.")
        item.transcribe = value == "true"
      elif value not in ("haar", "none"):
        raise ApiError(422, f"detect: {value[:40]!r}; use 'haar' (find faces) or 'none' (the picture is a face crop).")
      else:
        item.detect = value
  return item


def _utf8(data: bytes, name: str) -> str:
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as error:
    raise ApiError(400, f"{name}: not valid UTF-8 ({error.reason} at byte {error.start}).") from None


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[bytes, bool]]:
  """name -> (bytes, sent as a file) of each part of a multipart/form-data body, in memory; only the known
  fields, each at most once."""
  _, options = parse_options_header(content_type)
  boundary = options.get(b"boundary")
  if not boundary:
    raise ApiError(400, "multipart body without a boundary in its Content-Type.")
  collector = _Parts()
  parser = MultipartParser(boundary, collector.callbacks())
  try:
    parser.write(body)
    parser.finalize()
  except MultipartParseError as error:
    raise ApiError(400, f"broken multipart body: {error}") from None
  if not collector.complete:
    raise ApiError(400, "broken multipart body: it ends before its closing boundary.")
  return collector.parts


class _Parts:
  """python-multipart's callbacks, collecting each part's name, file flag and bytes."""

  def __init__(self):
    self.parts, self.complete = {}, False
    self._header, self._value, self._headers, self._data = b"", b"", {}, bytearray()

  def callbacks(self) -> dict:
    return {
      "on_part_begin": self._begin,
      "on_part_data": self._data_chunk,
      "on_part_end": self._end,
      "on_header_field": self._header_field,
      "on_header_value": self._header_value,
      "on_header_end": self._header_end,
      "on_end": self._finish,
    }

  def _begin(self):
    self._headers, self._data = {}, bytearray()

  def _data_chunk(self, data, start, end):
    self._data.extend(data[start:end])

  def _header_field(self, data, start, end):
    self._header += data[start:end]

  def _header_value(self, data, start, end):
    self._value += data[start:end]

  def _header_end(self):
    self._headers[self._header.lower()] = self._value
    self._header, self._value = b"", b""

  def _end(self):
    _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
    name = options.get(b"name", b"").decode("utf-8", "replace")
    if not name:
      raise ApiError(400, "a multipart part has no name (Content-Disposition: form-data; name=...).")
    if name not in FILE_FIELDS + TEXT_FIELDS:
      raise ApiError(422, f"unknown field {name[:40]!r}; this API reads {', '.join(FILE_FIELDS + TEXT_FIELDS)}.")
    if name in self.parts:
      raise ApiError(422, f"{name}: given twice; send one per request (POST /v1/predict/batch for several).")
    self.parts[name] = (bytes(self._data), b"filename" in options)

  def _finish(self):
    self.complete = True
