"""Speech-to-text with Whisper base (faster-whisper on the installed CTranslate2 weights), for the text branch.

    from emojax import speech_to_text
    transcript = speech_to_text.transcribe("clip.wav")             # a path, bytes, or samples with sample_rate=
    transcript.text, transcript.words[0].start, transcript.to_dict()

The published design reads the words of a recording with its text model; this gives them: a recording (a file, or
the GUI's microphone) becomes its transcript with word timings, which the text branch then scores like any
sentence. Settings come from `config.speech_to_text` of a run or bundle (`settings_of`; defaults in
`default_config`): language ("en", or "" to let Whisper detect it), beam size, compute type, CPU threads.
Whisper's own voice-activity filter is off: emotion clips are short and whole utterances.

The model folder is `emojax.pretrained.whisper_folder()` (two pip packages joined once); faster-whisper is the
optional extra `.[speech-pretrained]`. Both missing pieces raise `MissingPretrainedWeights` saying how to install.
"""

import dataclasses
import functools
import io
import os
import time

import ml_collections
import numpy as np

from emojax import config_utils, pretrained
from emojax.data import audio as audio_lib

SAMPLE_RATE = 16000  # what Whisper reads


def default_config() -> ml_collections.ConfigDict:
  """`config.speech_to_text` as configs set it (`config_utils.add_speech_to_text`): what `transcribe` uses unless a
  run's config says otherwise."""
  config = ml_collections.ConfigDict()
  config_utils.add_speech_to_text(config)
  return config.speech_to_text


def settings_of(config: ml_collections.ConfigDict | dict | None) -> ml_collections.ConfigDict:
  """The speech-to-text settings of a run's or bundle's config (its `speech_to_text` field over the defaults)."""
  settings = default_config()
  given = None if config is None else (config.get("speech_to_text") if "speech_to_text" in config else config)
  unknown = sorted(set(dict(given or {})) - set(settings))
  if unknown:
    raise ValueError(f"config.speech_to_text has unknown field(s) {unknown}; known: {sorted(settings)}.")
  settings.update(dict(given or {}))
  return settings


@dataclasses.dataclass
class Word:
  """One word (with its leading space, as Whisper writes it), seconds from the start of the audio."""

  word: str
  start: float
  end: float
  probability: float


@dataclasses.dataclass
class Transcript:
  """What was said: the text, each word's timing, the language (given or detected), the audio's length in seconds,
  and the seconds transcription took (`processing_seconds / seconds` is the real-time factor)."""

  text: str
  words: list[Word]
  language: str
  seconds: float
  processing_seconds: float

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@functools.lru_cache(maxsize=2)
def load_model(compute_type: str = "int8", cpu_threads: int = 1, folder: str = ""):
  """faster-whisper's `WhisperModel` on the Whisper base folder, loaded once per setting."""
  try:
    from faster_whisper import WhisperModel
  except ImportError as error:
    raise pretrained.MissingPretrainedWeights(
      f"Speech-to-text needs faster-whisper ({error}). {pretrained.INSTALL_HINT}"
    ) from error
  folder = folder or str(pretrained.whisper_folder())
  return WhisperModel(folder, device="cpu", compute_type=compute_type, cpu_threads=cpu_threads)


def _wave(audio, sample_rate: int | None) -> np.ndarray:
  if isinstance(audio, np.ndarray):
    if sample_rate is None:
      raise ValueError("audio given as samples needs sample_rate= (e.g. 16000); samples alone do not say their rate.")
    return audio_lib.to_mono(audio, sample_rate, SAMPLE_RATE)
  if isinstance(audio, (bytes, bytearray, memoryview)):
    return audio_lib.read_audio(io.BytesIO(bytes(audio)), SAMPLE_RATE)
  if isinstance(audio, (str, os.PathLike)) and not os.path.isfile(audio):
    raise FileNotFoundError(f"No audio file at {os.fspath(audio)!r}.")
  return audio_lib.read_audio(audio, SAMPLE_RATE)


def transcribe(
  audio,
  sample_rate: int | None = None,
  language: str | None = None,
  beam_size: int | None = None,
  config: ml_collections.ConfigDict | dict | None = None,
) -> Transcript:
  """The words of one recording: a path, bytes or a file object soundfile reads, or samples with `sample_rate`.

  `language` and `beam_size` override the settings of `config` (a run's config, its `speech_to_text` field, or
  None for `default_config()`). Raises `audio.BadAudio` for unreadable or empty audio.
  """
  settings = settings_of(config)
  language = settings.language if language is None else language
  beam_size = int(settings.beam_size if beam_size is None else beam_size)
  if beam_size < 1:
    raise ValueError(f"beam_size={beam_size} must be >= 1 (1 = greedy decoding).")
  wave = _wave(audio, sample_rate)
  model = load_model(settings.compute_type, int(settings.cpu_threads))
  started = time.perf_counter()
  segments, info = model.transcribe(
    wave,
    language=language or None,
    beam_size=beam_size,
    vad_filter=False,
    word_timestamps=bool(settings.word_timestamps),
    condition_on_previous_text=False,
  )
  segments = list(segments)  # decoding happens while the generator is consumed
  elapsed = time.perf_counter() - started
  words = [
    Word(w.word, round(float(w.start), 3), round(float(w.end), 3), round(float(w.probability), 4))
    for segment in segments
    for w in (segment.words or [])
  ]
  text = " ".join(segment.text.strip() for segment in segments).strip()
  return Transcript(text, words, info.language, round(len(wave) / SAMPLE_RATE, 3), round(elapsed, 3))


def fill_missing_text(
  items: list[dict], sample_rate: int | None = None, config=None, audio_key: str = "speech", text_key: str = "text"
) -> list[Transcript | None]:
  """Gives every item that has audio but no text its transcript as text (in place), for a model whose text branch
  should hear the words of an audio-only input; returns each item's `Transcript` (None where none was made).

  The Recognizer's hook: `transcripts = speech_to_text.fill_missing_text(items, sample_rate, self.config)` before
  the items are scored, then each result carries `transcripts[i].to_dict()`.
  """
  transcripts = []
  for item in items:
    transcript = None
    if item.get(audio_key) is not None and item.get(text_key) is None:
      transcript = transcribe(item[audio_key], sample_rate, config=config)
      item[text_key] = transcript.text
    transcripts.append(transcript)
  return transcripts


# ----------------------------------------------------------------------------------------------
# Word error rate.
# ----------------------------------------------------------------------------------------------
# What RAVDESS's actors say, by the statement part of the file name (part 5 of 03-01-EE-II-SS-RR-AA).
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}


def ravdess_reference(name: str) -> str:
  """The sentence a RAVDESS speech file holds ('03-01-05-02-01-01-12.flac' -> 'Kids are talking by the door.')."""
  parts = os.path.basename(name).split(".")[0].split("-")
  if len(parts) != 7 or parts[4] not in RAVDESS_STATEMENTS:
    raise ValueError(f"{name!r} is not a RAVDESS speech file name (03-01-EE-II-SS-RR-AA, statement SS 01 or 02).")
  return RAVDESS_STATEMENTS[parts[4]]


def normalized_words(text: str) -> list[str]:
  """Lower-cased words without punctuation ("Kids are talking by the door." -> kids are talking by the door)."""
  kept = "".join(c if c.isalnum() or c in " '" else " " for c in text.lower())
  return kept.replace("'", "").split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
  """(substitutions + deletions + insertions, reference words) after `normalized_words`: Levenshtein over words."""
  ref, hyp = normalized_words(reference), normalized_words(hypothesis)
  previous = list(range(len(hyp) + 1))
  for i, r in enumerate(ref, 1):
    current = [i]
    for j, h in enumerate(hyp, 1):
      current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
    previous = current
  return previous[-1], len(ref)
