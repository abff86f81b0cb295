"""The page in a real browser: Debian's chromium driven by Playwright (never `playwright install`), a fake webcam
(a FER2013 validation face upscaled into a Y4M video) and a fake microphone (a RAVDESS clip as WAV). Every request
the page makes must go to the server itself; a screenshot of each view goes to docs/figures/serve/."""

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from emojax.labels import EKMAN7
from tests.conftest import SHARED_DATA
from tests.serve_support import SENTENCE, face_photo, fer_face, ravdess_clip, samples_of, wav_bytes, write_y4m

CHROMIUM = os.environ.get("EMOJAX_CHROMIUM", "/usr/bin/chromium")
# A screenshot of each view, for docs/figures/serve/ when $EMOJAX_SCREENSHOTS names that folder (else a temp dir).
FIGURES = Path(os.environ.get("EMOJAX_SCREENSHOTS") or tempfile.mkdtemp(prefix="emojax_screenshots_"))
MISSING = [name for name in ("fer2013", "ravdess", "goemotions") if not (SHARED_DATA / name).is_dir()]
pytestmark = [
  pytest.mark.slow,
  pytest.mark.skipif(bool(MISSING), reason=f"real data missing under {SHARED_DATA}: {MISSING}"),
  pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the serve extra)")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
  """The fake camera and microphone files, and the files the tests upload."""
  folder = tmp_path_factory.mktemp("media")
  face = fer_face(SHARED_DATA)
  from PIL import Image

  frame = np.asarray(Image.open(io.BytesIO(face_photo(face, size=(640, 480)))).convert("L"))
  clip = ravdess_clip(SHARED_DATA)
  wav = folder / "microphone.wav"
  wav.write_bytes(wav_bytes(samples_of(clip, 48000), 48000))
  return {
    "face": face,
    "clip": clip,
    "y4m": write_y4m(folder / "webcam.y4m", frame),
    "wav": wav,
    "profile": folder / "profile",
  }


@pytest.fixture(scope="module")
def page(live_server, media):
  """One browser session; the route handler records every request and aborts any not to the server."""
  flags = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    f"--use-file-for-fake-video-capture={media['y4m']}",
    f"--use-file-for-fake-audio-capture={media['wav']}",
    "--autoplay-policy=no-user-gesture-required",
  ]
  requests, sockets = [], []
  with sync_api.sync_playwright() as playwright:
    context = playwright.chromium.launch_persistent_context(
      str(media["profile"]),
      executable_path=CHROMIUM,
      headless=True,
      args=flags,
      viewport={"width": 1200, "height": 1000},
      permissions=["camera", "microphone"],
    )

    def route(request_route):
      requests.append(request_route.request.url)
      if request_route.request.url.startswith(live_server.url + "/"):
        request_route.continue_()
      else:
        request_route.abort()

    context.route("**/*", route)
    tab = context.new_page()
    tab.on("websocket", lambda socket: sockets.append(socket.url))
    tab.goto(live_server.url + "/")
    tab.wait_for_selector("body[data-ready=true]")
    tab.requests, tab.sockets = requests, sockets
    yield tab
    context.close()
  socket_url = live_server.url.replace("http", "ws")
  foreign = [u for u in requests if not u.startswith(live_server.url + "/")]
  foreign += [u for u in sockets if not u.startswith(socket_url + "/")]
  assert not foreign, f"the page asked for {foreign}"


def _shot(tab, name: str) -> None:
  FIGURES.mkdir(parents=True, exist_ok=True)
  tab.screenshot(path=str(FIGURES / f"{name}.png"), full_page=True)


def test_uploads_and_text_show_each_modality_and_the_fused_result(page, live_server, media):
  assert page.is_visible("#face-panel") and page.is_visible("#speech-panel") and page.is_visible("#text-panel")
  page.set_input_files("#face-file", str(media["face"]))
  page.check("#face-crop")  # the 48x48 file is a face crop: no detection
  page.wait_for_selector("#face-results .result-label")
  page.set_input_files("#audio-file", str(media["clip"]))
  page.wait_for_selector("#speech-results .result-label")
  page.fill("#text-input", SENTENCE)
  page.click("#text-submit")
  page.wait_for_selector("#text-results .result-label")
  engine = live_server.engine
  face = engine.by_modality["face"].predict(face=media["face"].read_bytes(), detect="none")
  speech = engine.by_modality["speech"].predict(audio=media["clip"].read_bytes())
  text = engine.by_modality["text"].predict(text=SENTENCE)
  assert page.inner_text("#face-results .result-label") == f"Face 1: {face.faces[0].label}"
  assert page.inner_text("#speech-results .result-label") == f"Speech: {speech.speech.label}"
  assert page.inner_text("#text-results .result-label").startswith("Text: ")
  assert page.locator("#timeline .segment").count() == len(speech.speech.windows)
  assert page.locator("#fused-weights .bar").count() == 3
  fused = np.mean([list(p.fused.probabilities.values()) for p in (face, speech, text)], axis=0)
  assert page.inner_text("#fused-label") == EKMAN7[int(fused.argmax())]
  assert page.locator("#error").is_hidden()
  _shot(page, "upload")


def test_transcribe_shows_the_words_of_the_recording(page, media):
  """Ticking "transcribe" asks the server for Whisper's words (the page still holds the uploaded clip)."""
  pytest.importorskip("faster_whisper")
  from emojax import speech_to_text

  page.set_input_files("#audio-file", str(media["clip"]))
  page.wait_for_selector("#speech-results .result-label")
  page.check("#transcribe")
  page.wait_for_function("document.querySelector('#transcript').textContent.includes('door')", timeout=60000)
  heard = page.inner_text("#transcript").removeprefix("Transcript:").strip()
  reference = speech_to_text.ravdess_reference(media["clip"].name)
  assert speech_to_text.word_errors(reference, heard) == (0, 6)
  assert page.locator("#transcript span").count() == 6  # one span per word, its times in the title
  _shot(page, "transcript")


def test_webcam_frames_get_labels_that_update(page):
  page.click("#webcam-start")
  page.wait_for_function("Number(document.querySelector('#webcam-stats').dataset.frames || 0) >= 5", timeout=60000)
  first = int(page.get_attribute("#webcam-stats", "data-frames"))
  page.wait_for_function(
    f"Number(document.querySelector('#webcam-stats').dataset.frames) >= {first + 10}", timeout=60000
  )
  assert page.inner_text("#face-results .result-label").startswith("Face 1: ")
  assert "frames/s" in page.inner_text("#webcam-stats")
  _shot(page, "webcam")
  page.click("#webcam-stop")


def test_microphone_hops_fill_the_timeline(page):
  page.click("#mic-start")
  page.wait_for_function("document.querySelectorAll('#timeline .segment').length >= 3", timeout=60000)
  assert page.inner_text("#speech-results .result-label").startswith("Speech (last window): ")
  assert "update latency" in page.inner_text("#mic-stats")
  _shot(page, "microphone")
  page.click("#mic-stop")


def test_api_docs_render_offline(page, live_server):
  page.goto(live_server.url + "/docs")
  page.wait_for_selector(".opblock-summary-path", timeout=30000)
  paths = page.locator(".opblock-summary-path").all_inner_texts()
  assert "/v1/predict" in [p.strip() for p in paths]
  _shot(page, "docs")
  assert all(url.startswith(live_server.url) for url in page.requests)
  assert page.sockets and all(url.startswith(live_server.url.replace("http", "ws")) for url in page.sockets)
