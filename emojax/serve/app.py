"""The FastAPI app: the REST API, the WebSocket streams, the page and the API docs, all from this process.

Routes: `GET /` (the page), `GET /healthz`, `GET /v1/model`, `POST /v1/predict`, `POST /v1/predict/batch`,
`WS /v1/stream/face`, `WS /v1/stream/speech`, `GET /docs` (Swagger UI from the `swagger-ui-bundle` package's
files) and `GET /openapi.json`. Nothing the page or the docs load comes from anywhere but this server.

Every refusal is JSON `{"error": message, "status": code}` with a 4xx code (503 with Retry-After when the queue
is full); a request can fail, the server stays up.
"""

import asyncio
import contextlib
import logging
from pathlib import Path

import fastapi
from fastapi import Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from emojax.inference import InputError
from emojax.serve import payloads, streams
from emojax.serve.batching import MicroBatcher, QueueFull
from emojax.serve.engine import Engine
from emojax.serve.limits import ApiError, BodyLimit, Limits, check_faces

STATIC = Path(__file__).parent / "static"
RETRY_AFTER_SECONDS = 1


def create_app(
  engine: Engine,
  limits: Limits | None = None,
  batcher: MicroBatcher | None = None,
  max_wait_s: float = 0.005,
  max_queue: int = 64,
):
  """The app serving `engine`: requests of several clients share batches of at most the model's largest batch
  size, gathered for up to `max_wait_s`; at most `max_queue` items wait."""
  limits = limits or Limits()
  batcher = batcher or MicroBatcher(engine.predict, engine.max_batch, max_wait_s, max_queue)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    yield
    batcher.close()

  app = fastapi.FastAPI(
    title="emojax",
    version="1",
    docs_url=None,
    redoc_url=None,
    lifespan=lifespan,
    description="Emotion recognition from faces, speech and text (emojax bundles).",
  )
  app.state.engine, app.state.limits, app.state.batcher = engine, limits, batcher
  _errors(app)
  _pages(app)
  _api(app, engine, limits, batcher)
  _streams(app, engine, limits, batcher)
  app.openapi = lambda: _openapi(app)
  app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)
  return app


# ----------------------------------------------------------------------------------------------
# Errors.
# ----------------------------------------------------------------------------------------------
def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
  return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _errors(app) -> None:
  @app.exception_handler(ApiError)
  async def api_error(request, error: ApiError):
    return error_response(error.status, error.message, error.headers)

  @app.exception_handler(InputError)
  async def input_error(request, error: InputError):
    return error_response(422, str(error))

  @app.exception_handler(QueueFull)
  async def queue_full(request, error: QueueFull):
    return error_response(503, str(error), {"Retry-After": str(RETRY_AFTER_SECONDS)})

  @app.exception_handler(RequestValidationError)
  async def invalid(request, error: RequestValidationError):
    return error_response(422, payloads.validation_message(error.errors()))

  @app.exception_handler(HTTPException)
  async def http_error(request, error: HTTPException):
    message = {
      404: f"no route {request.url.path}; GET /docs lists the API",
      405: f"{request.method} is not allowed on {request.url.path}; GET /docs lists the API",
    }
    return error_response(
      error.status_code, message.get(error.status_code, str(error.detail)), getattr(error, "headers", None)
    )

  @app.exception_handler(Exception)
  async def server_error(request, error: Exception):
    logging.exception("Unexpected error answering %s %s", request.method, request.url.path)
    return error_response(500, f"internal error ({type(error).__name__}); the server is still up.")


# ----------------------------------------------------------------------------------------------
# The page and the docs.
# ----------------------------------------------------------------------------------------------
def _pages(app) -> None:
  import swagger_ui_bundle

  app.mount("/static", StaticFiles(directory=STATIC), name="static")
  app.mount("/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

  @app.get("/", include_in_schema=False)
  async def page():
    return FileResponse(STATIC / "index.html")

  @app.get("/favicon.ico", include_in_schema=False)
  async def favicon():
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

  @app.get("/docs", include_in_schema=False)
  async def docs():
    return get_swagger_ui_html(
      openapi_url="/openapi.json",
      title="emojax API",
      swagger_js_url="/swagger/swagger-ui-bundle.js",
      swagger_css_url="/swagger/swagger-ui.css",
      swagger_favicon_url="/static/favicon.svg",
      swagger_ui_parameters={"validatorUrl": None},
    )  # no call to validator.swagger.io


def _openapi(app) -> dict:
  """FastAPI's schema, as OpenAPI 3.0 (what the bundled Swagger UI 4 renders), with the request bodies the
  predict routes parse themselves."""
  if app.openapi_schema is None:
    schema = get_openapi(
      title=app.title, version=app.version, description=app.description, routes=app.routes, openapi_version="3.0.3"
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (payloads.PredictRequest, payloads.BatchRequest):
      definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
      components.update(definition.pop("$defs", {}))
      components[model.__name__] = definition
    app.openapi_schema = schema
  return app.openapi_schema


PREDICT_BODY = {
  "requestBody": {
    "required": True,
    "content": {
      "multipart/form-data": {
        "schema": {
          "type": "object",
          "properties": {
            "image": {"type": "string", "format": "binary", "description": "a picture file"},
            "audio": {"type": "string", "format": "binary", "description": "a recording file"},
            "text": {"type": "string", "description": "a sentence"},
            "detect": {"type": "string", "enum": ["haar", "none"], "default": "haar"},
          },
        }
      },
      "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
    },
  }
}
BATCH_BODY = {
  "requestBody": {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchRequest"}}},
  }
}


# ----------------------------------------------------------------------------------------------
# The API.
# ----------------------------------------------------------------------------------------------
def _api(app, engine: Engine, limits: Limits, batcher: MicroBatcher) -> None:
  @app.get("/healthz", summary="Liveness, and the micro-batcher's counters")
  async def healthz():
    return {"status": "ok", "batcher": batcher.stats()}

  @app.get("/v1/model", summary="What is served: modalities, classes, bundle metadata and validation metrics")
  async def model():
    return {**engine.describe(), "limits": vars(limits), "max_batch": engine.max_batch}

  @app.post(
    "/v1/predict",
    summary="Labels for one input (multipart files and fields, or JSON with base64)",
    openapi_extra=PREDICT_BODY,
  )
  async def predict(request: Request):
    item = await _one_item(request, limits)
    transcripts = await asyncio.to_thread(engine.transcribe, [item])
    (result,) = engine.with_transcripts(await batcher.submit([item]), transcripts)
    if isinstance(result, InputError):
      raise result
    return check_faces(result.to_dict(), limits)

  @app.post("/v1/predict/batch", summary="Labels for several inputs (JSON), one result each", openapi_extra=BATCH_BODY)
  async def predict_batch(request: Request):
    _content_type(request, ("application/json",))
    batch = payloads.json_body(await request.body(), payloads.BatchRequest)
    if not batch.items or len(batch.items) > limits.max_batch_items:
      raise ApiError(413 if batch.items else 422, f"items: {len(batch.items)}; send 1 to {limits.max_batch_items}.")
    items = [payloads.item_from_json(entry, limits, f"items.{i}.") for i, entry in enumerate(batch.items)]
    transcripts = await asyncio.to_thread(engine.transcribe, items)
    results = engine.with_transcripts(await batcher.submit(items), transcripts)
    for index, result in enumerate(results):
      if isinstance(result, InputError):
        raise ApiError(422, f"items.{index}: {result}")
    return {"results": [check_faces(result.to_dict(), limits) for result in results]}


async def _one_item(request: Request, limits: Limits):
  kind = _content_type(request, ("multipart/form-data", "application/json"))
  body = await request.body()
  if kind == "application/json":
    return payloads.item_from_json(payloads.json_body(body, payloads.PredictRequest), limits)
  return payloads.multipart_item(body, request.headers["content-type"], limits)


def _content_type(request: Request, accepted: tuple[str, ...]) -> str:
  kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
  if kind not in accepted:
    raise ApiError(415, f"Content-Type {kind or '(none)'!r}; send {' or '.join(accepted)}.")
  return kind


# ----------------------------------------------------------------------------------------------
# Streams.
# ----------------------------------------------------------------------------------------------
def _streams(app, engine: Engine, limits: Limits, batcher: MicroBatcher) -> None:
  async def submit(items):
    try:
      return await batcher.submit(items)
    except QueueFull as error:
      raise ApiError(503, str(error)) from None

  @app.websocket("/v1/stream/face")
  async def face_stream(socket: WebSocket, smoothing: float = 0.4):
    await socket.accept()
    if "face" not in engine.by_modality:
      return await _close(socket, "this model reads no faces")
    smoother = streams.FaceSmoother(min(1.0, max(0.01, smoothing)))
    await _pump(socket, lambda data: streams.face_frame(data, smoother, submit, limits))

  @app.websocket("/v1/stream/speech")
  async def speech_stream(socket: WebSocket, sample_rate: int = 16000):
    await socket.accept()
    settings = engine.audio_settings()
    if settings is None:
      return await _close(socket, "this model reads no recordings")
    try:
      window = streams.SpeechWindow(sample_rate, settings["window_seconds"])
    except ApiError as error:
      return await _close(socket, error.message)
    await _pump(socket, lambda data: streams.speech_hop(data, window, submit, limits))


async def _pump(socket: WebSocket, answer) -> None:
  """Binary messages in, one JSON answer each; a text message is refused with an error, the stream goes on."""
  try:
    while True:
      message = await socket.receive()
      if message["type"] == "websocket.disconnect":
        return
      data = message.get("bytes")
      if data is None:
        await socket.send_json(
          {"error": "send binary messages (a frame's file bytes, or float32 samples)", "status": 422}
        )
        continue
      await socket.send_json(await answer(data))
  except WebSocketDisconnect:
    return


async def _close(socket: WebSocket, reason: str) -> None:
  await socket.send_json({"error": reason, "status": 422})
  await socket.close(code=1008, reason=reason)
