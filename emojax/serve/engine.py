"""What a server predicts with: one bundle, or several single-modality bundles side by side.

One bundle (a face, speech or text model, or an end-to-end fusion model) is served as `Recognizer` predicts with
it. Several bundles, one per modality (`--model bundles/fer --model bundles/ravdess --model bundles/goemotions`),
each label their own modality, and the request's fused result is the mean of their Ekman-7 distributions
(late fusion, equal weights), named as such in `fused.method` and `fused.weighting`.

`Item` is one input as it came over the network: bytes of a picture or a recording, samples from a microphone,
a string, or (for the synthetic demo bundle) a feature matrix or token ids. Items never carry paths.
"""

import dataclasses
import itertools
from pathlib import Path

import numpy as np

from emojax import labels as labels_lib
from emojax.inference import FusedResult, InputError, Prediction, Recognizer
from emojax.inference import inputs as inputs_lib

LATE_FUSION = "late fusion (mean of the separate bundles' Ekman-7 probabilities)"
# Input kinds a person can give in the page (the rest, the demo's feature matrices and token ids, only by the API).
RAW_KINDS = ("image", "audio", "waveform", "text")


@dataclasses.dataclass
class Item:
  """One input. `face` and `audio` are encoded files (bytes) or arrays (`audio` samples need `sample_rate`);
  `text` is a string, or token ids for the demo bundle; `audio` may be a feature matrix for the demo bundle."""

  face: bytes | np.ndarray | None = None
  audio: bytes | np.ndarray | None = None
  text: str | list[int] | None = None
  sample_rate: int | None = None
  detect: str = "haar"
  transcribe: bool = False  # Whisper's words of `audio`: in the result, and the text model's input where no text

  def given(self) -> tuple[str, ...]:
    return tuple(m for m, v in (("face", self.face), ("speech", self.audio), ("text", self.text)) if v is not None)

  def group(self) -> tuple:
    """Items of one group go through `predict_batch` together (one call takes one detector and one rate)."""
    return self.given(), self.detect, self.sample_rate


class Engine:
  """Recognizers by modality; `predict` turns items into `Prediction`s or the `InputError` of each bad one."""

  def __init__(self, recognizers: list[Recognizer], names: list[str] | None = None):
    if not recognizers:
      raise ValueError("Serve at least one model (--model DIR).")
    if len(recognizers) > 1 and any(r.fusion for r in recognizers):
      raise ValueError("An end-to-end fusion bundle reads every modality itself: serve it alone.")
    self.recognizers = recognizers
    self.names = names or [f"model {i}" for i in range(len(recognizers))]
    self.by_modality = {}
    for recognizer, name in zip(recognizers, self.names):
      for modality in recognizer.modalities:
        if modality in self.by_modality:
          raise ValueError(f"Two bundles read {modality} ({name} and another): serve one model per modality.")
        self.by_modality[modality] = recognizer

  @classmethod
  def load(cls, paths: list[str], batch_sizes=None) -> "Engine":
    kwargs = {} if batch_sizes is None else {"batch_sizes": batch_sizes}
    return cls([Recognizer.load(path, **kwargs) for path in paths], [Path(path).name for path in paths])

  # -- what is served --------------------------------------------------------------------------
  @property
  def kinds(self) -> dict[str, str]:
    """Modality -> what it is given as (`image`, `audio`, `waveform`, `frames`, `text`, `token_ids`)."""
    return {m: kind for r in self.recognizers for m, kind in r.spec.kinds.items()}

  @property
  def max_batch(self) -> int:
    return min(r.batch_sizes[-1] for r in self.recognizers)

  def audio_settings(self) -> dict | None:
    """The speech model's sample rate and windowing (what a microphone stream is cut to), or None."""
    recognizer = self.by_modality.get("speech")
    if recognizer is None or self.kinds["speech"] == "frames":
      return None
    audio = recognizer.audio_config
    return {
      "sample_rate": int(audio.sample_rate),
      "window_seconds": inputs_lib.windowing(audio)["window_seconds"],
      "hop_seconds": float(recognizer.hop_seconds),
    }

  def describe(self) -> dict:
    """GET /v1/model: modalities, classes and each bundle's metadata and validation metrics."""
    return {
      "modalities": list(self.by_modality),
      "inputs": self.kinds,
      "page_modalities": [m for m, kind in self.kinds.items() if kind in RAW_KINDS],
      "fusion": "end_to_end"
      if self.recognizers[0].fusion
      else (LATE_FUSION if len(self.recognizers) > 1 else "single modality"),
      "ekman7": list(labels_lib.EKMAN7),
      "audio": self.audio_settings(),
      "models": [_model_card(r, name) for r, name in zip(self.recognizers, self.names)],
    }

  # -- predicting ------------------------------------------------------------------------------
  def predict(self, items: list[Item]) -> list[Prediction | InputError]:
    """A result per item, in order: items are grouped by what they give and run a group at a time."""
    results = [None] * len(items)
    order = sorted(range(len(items)), key=lambda i: repr(items[i].group()))
    for _, group in itertools.groupby(order, key=lambda i: repr(items[i].group())):
      indices = list(group)
      for index, result in zip(indices, self._predict_group([items[i] for i in indices])):
        results[index] = result
    return results

  def transcribe(self, items: list[Item]) -> list:
    """Each item's transcript (see `_transcript`), before `predict`: a transcript may become an item's text. The
    routes run this in a thread of its own, not in the micro-batcher's worker, where transcribing a long
    recording would hold every other request."""
    return [self._transcript(item) for item in items]

  @staticmethod
  def with_transcripts(results: list, transcripts: list) -> list:
    """`predict`'s results with each item's transcript, or the reason it has none, attached."""
    for result, transcript in zip(results, transcripts):
      if isinstance(result, Prediction) and transcript is not None:
        if isinstance(transcript, str):
          result.reasons["transcript"] = transcript
        else:
          result.transcript = transcript.to_dict()
    return results

  def _transcript(self, item: Item):
    """The words of an item's recording (`speech_to_text.Transcript`) when it asks for them, or why there are
    none (a string); None when not asked. The words become the item's text where the served models read text and
    the item has none. Unreadable audio is left to the speech model, which names the problem."""
    if not item.transcribe or item.audio is None:
      return None
    speech = self.by_modality.get("speech")
    if speech is None or self.kinds["speech"] == "frames":
      return "transcription needs a model that reads recordings"
    from emojax import pretrained, speech_to_text

    try:
      transcript = speech_to_text.transcribe(item.audio, item.sample_rate, config=speech.config)
    except pretrained.MissingPretrainedWeights as error:
      return str(error)
    except (ValueError, FileNotFoundError) as error:  # audio.BadAudio is a ValueError
      return f"no transcript: {error}"
    text_model = self.by_modality.get("text")
    if item.text is None and transcript.text.strip() and text_model is not None and text_model.reads_text:
      item.text = transcript.text
    return transcript

  def _predict_group(self, items: list[Item]) -> list[Prediction | InputError]:
    try:
      return list(self._predict_together(items))
    except InputError as error:
      if len(items) == 1:
        return [error]
    # One bad item fails the whole batch: score each alone, so each gets its own result or error.
    return [self._predict_alone(item) for item in items]

  def _predict_alone(self, item: Item) -> Prediction | InputError:
    try:
      return self._predict_together([item])[0]
    except InputError as error:
      return error

  def _predict_together(self, items: list[Item]) -> list[Prediction]:
    given = items[0].given()
    if not given:
      raise InputError(f"Nothing to predict: give {self._reads()}.")
    missing = [m for m in given if m not in self.by_modality]
    if missing:
      raise InputError(f"This server's model reads {self._reads()}; it cannot use {', '.join(missing)}.")
    columns = {"face": [i.face for i in items], "speech": [i.audio for i in items], "text": [i.text for i in items]}
    options = {"detect": items[0].detect, "sample_rate": items[0].sample_rate}
    if len(self.recognizers) == 1:
      recognizer = self.recognizers[0]
      return recognizer.predict_batch(
        faces=columns["face"] if "face" in given else None,
        audios=columns["speech"] if "speech" in given else None,
        texts=columns["text"] if "text" in given else None,
        **options,
      )
    parts = {}
    for modality in given:
      argument = {"face": "faces", "speech": "audios", "text": "texts"}[modality]
      parts[modality] = self.by_modality[modality].predict_batch(**{argument: columns[modality]}, **options)
    return [late_fusion({m: predictions[row] for m, predictions in parts.items()}) for row in range(len(items))]

  def _reads(self) -> str:
    names = {"face": "image", "speech": "audio", "text": "text"}
    return " and/or ".join(f"{names[m]} ({kind})" for m, kind in self.kinds.items())


def late_fusion(parts: dict[str, Prediction]) -> Prediction:
  """One prediction from single-modality predictions of one input: their results side by side, and the mean of
  the Ekman-7 distributions of those that gave one (a picture without a face gives none)."""
  result = Prediction()
  for modality, part in parts.items():
    result.faces = part.faces if modality == "face" else result.faces
    result.speech = part.speech if modality == "speech" else result.speech
    result.texts = part.texts if modality == "text" else result.texts
    result.reasons.update({k: v for k, v in part.reasons.items() if k != "fused"})
  fused = {m: p.fused for m, p in parts.items() if p.fused is not None}
  if not fused:
    result.reasons["fused"] = "no modality gave a prediction"
    return result
  mean = np.mean([[f.probabilities[name] for name in labels_lib.EKMAN7] for f in fused.values()], axis=0)
  scores = {name: round(float(p), 6) for name, p in zip(labels_lib.EKMAN7, mean)}
  weight = round(1.0 / len(fused), 6)
  result.fused = FusedResult(
    scores,
    labels_lib.EKMAN7[int(mean.argmax())],
    LATE_FUSION,
    list(fused),
    {m: weight for m in fused},
    "equal weights over the modalities that gave a prediction",
  )
  return result


def _model_card(recognizer: Recognizer, name: str) -> dict:
  """A bundle's metadata for clients: what it is, reads and predicts, and its validation figures (no paths)."""
  manifest = recognizer.trained.source.get("manifest", {})
  space = recognizer.label_space
  return {
    "name": name,
    "model": recognizer.config.model.name,
    "dataset": recognizer.config.data.name,
    "modalities": list(recognizer.modalities),
    "inputs": dict(recognizer.spec.kinds),
    "classes": list(space.class_names),
    "multi_label": bool(space.multi_label),
    "emojax_version": manifest.get("emojax_version"),
    "created": manifest.get("created"),
    "step": recognizer.trained.source.get("step"),
    "metrics": manifest.get("validation"),
    "inference": manifest.get("inference"),
    "batch_sizes": list(recognizer.batch_sizes),
  }
