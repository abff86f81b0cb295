"""`Recognizer`: load a trained model once, then label photos, recordings and sentences.

    from emojax.inference import Recognizer
    recognizer = Recognizer.load("bundles/fer_resattn")          # a bundle, or a training workdir
    result = recognizer.predict(face="photo.jpg")                 # path, bytes, numpy array or PIL image
    print(result.fused.label, result.faces[0].box, result.to_dict())
    results = recognizer.predict_batch(faces=["a.jpg", "b.png"])  # one Prediction per item

Faces are found with OpenCV's Haar cascade and each is returned with its box (`detect="none"` takes the picture
as an aligned crop); a recording is scored as the speech readers read it (its centre clip), and one longer than
two clips in sliding windows, each on the timeline of `SpeechResult.windows` (window and hop from the bundle);
text is a string or a list of strings, multi-label decisions at the bundle's thresholds.
A result holds, per modality, class -> probability maps and top label(s), and `fused`: the Ekman-7 prediction of
the whole input with what it relied on (an end-to-end fusion model's modality weights; a single-modality model
relies on its one modality).

Inputs are padded to a few bucket shapes (batch sizes 1, 8 and 32; the model's token widths and clip lengths),
all compiled when the model loads, through JAX's persistent compilation cache when it is warm: no input size
compiles anything afterwards (`compiled_programs`).
"""

import dataclasses
import itertools
import json

import jax
import numpy as np

from emojax import labels as labels_lib
from emojax import metrics
from emojax import prediction as prediction_lib
from emojax.config_utils import cache_dir
from emojax.data import pipeline
from emojax.inference import bundle as bundle_lib
from emojax.inference import inputs as inputs_lib
from emojax.inference.inputs import InputError

DEFAULT_BATCH_SIZES = inputs_lib.DEFAULT_BATCH_SIZES
# What predictions keep of a model's outputs (per-example vectors; per-frame attention is left out: its length
# follows the bucket a batch was padded to).
OUTPUT_KEYS = ("logits", "confidence", "sentiment_logits", "modality_weights", "modality_probabilities")


# ----------------------------------------------------------------------------------------------
# Results.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FaceResult:
  """One face: where (`box`, [x, y, width, height] in the picture), class -> probability, the top class, and the
  model's own confidence where it has a confidence head (ResidualAttentionCNN)."""

  box: list[int]
  probabilities: dict[str, float]
  label: str
  confidence: float | None = None


@dataclasses.dataclass
class WindowResult:
  """One window of a recording (seconds from the start of its speech, silence trimmed)."""

  start: float
  end: float
  probabilities: dict[str, float]
  label: str


@dataclasses.dataclass
class SpeechResult:
  """A recording: the mean of its windows' class probabilities, the top class, its seconds of speech after
  trimming silence, and each window's own prediction (one window when it fits in one clip)."""

  probabilities: dict[str, float]
  label: str
  seconds: float
  windows: list[WindowResult]


@dataclasses.dataclass
class TextResult:
  """One text: class -> probability (sigmoid per label for multi-label models), the most probable label, the
  labels at or above their thresholds (multi-label; may be empty), and the sentiment head's distribution."""

  text: str | list[int]
  probabilities: dict[str, float]
  label: str
  labels: list[str]
  sentiment: dict[str, float] | None = None
  sentiment_label: str | None = None


@dataclasses.dataclass
class FusedResult:
  """The Ekman-7 prediction of the whole input: probabilities, top class, the method, the modalities it read, and
  their weights: what fusion relied on, as `weighting` says (the fusion head's `modality_weights`: learned gates or
  adaptive weights, or confidences, or presence when the head weights present modalities equally before its graph
  attention; 1 for a single modality)."""

  probabilities: dict[str, float]
  label: str
  method: str
  modalities: list[str]
  weights: dict[str, float]
  weighting: str = ""


@dataclasses.dataclass
class Prediction:
  """Everything predicted for one input. A modality the model does not read, or that was not given, is None;
  `faces` is [] when a picture holds no face, and `reasons` says why a result is empty or a modality absent."""

  faces: list[FaceResult] | None = None
  speech: SpeechResult | None = None
  texts: list[TextResult] | None = None
  fused: FusedResult | None = None
  reasons: dict[str, str] = dataclasses.field(default_factory=dict)
  transcript: dict | None = None  # the recording's words (speech_to_text.Transcript), when transcribe=True

  def to_dict(self) -> dict:
    return _plain(dataclasses.asdict(self))

  def to_json(self, **kwargs) -> str:
    return json.dumps(self.to_dict(), **kwargs)


def _plain(value):
  """numpy scalars and arrays -> Python numbers and lists (JSON)."""
  if isinstance(value, dict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  return value


def _scores(names, probabilities) -> dict[str, float]:
  return {name: round(float(p), 6) for name, p in zip(names, probabilities)}


# ----------------------------------------------------------------------------------------------
# The recognizer.
# ----------------------------------------------------------------------------------------------
class Recognizer:
  """A trained model (bundle or workdir) with its preprocessing, compiled for a few bucket shapes."""

  def __init__(
    self,
    trained: bundle_lib.TrainedModel,
    batch_sizes=DEFAULT_BATCH_SIZES,
    warmup: bool = True,
    hop_seconds: float | None = None,
  ):
    if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
      raise ValueError(f"batch_sizes={batch_sizes}: give one or more positive batch sizes, e.g. (1, 8, 32).")
    self.trained = trained
    self.config = trained.config
    self.spec = trained.spec
    self.label_space = trained.label_space
    self.batch_sizes = tuple(sorted({int(b) for b in batch_sizes}))
    self.fusion = self.config.model.name == "fusion.end_to_end"
    # Long recordings: the bundle's windowing (the defaults of `inputs.windowing` for a workdir); `hop_seconds`
    # overrides its hop.
    audio = self.audio_config
    recorded = trained.source.get("manifest", {}).get("inference", {})
    windows = {
      **(inputs_lib.windowing(audio) if audio else {}),
      **{k: v for k, v in recorded.items() if k.endswith("_seconds")},
    }
    self.hop_seconds = hop_seconds or windows.get("hop_seconds", 1.0)
    self.long_recording_seconds = windows.get("long_recording_seconds", 0.0)
    self._predict_step = prediction_lib.make_predict_step(
      trained.model, keys=OUTPUT_KEYS, tta_flip=bool(self.config.eval.get("tta_flip", False))
    )
    self._variables = jax.device_put(trained.variables)
    if warmup:
      self.warmup()

  @classmethod
  def load(
    cls,
    path,
    which: str = "best",
    batch_sizes=DEFAULT_BATCH_SIZES,
    warmup: bool = True,
    compilation_cache: str | None = None,
    hop_seconds: float | None = None,
  ) -> "Recognizer":
    """A bundle folder or a training workdir (its `which` checkpoint). `compilation_cache`: JAX's persistent
    cache folder (default `.cache/jax_compilation`, or $EMOJAX_CACHE_DIR; "" = off); `warmup=False` compiles
    each bucket on first use instead of at load."""
    from emojax import sharding

    sharding.enable_compilation_cache(cache_dir("jax_compilation") if compilation_cache is None else compilation_cache)
    return cls(bundle_lib.load(path, which), batch_sizes, warmup, hop_seconds)

  # -- what the model is ------------------------------------------------------------------------
  @property
  def modalities(self) -> tuple[str, ...]:
    return self.spec.modalities

  @property
  def class_names(self) -> tuple[str, ...]:
    return self.label_space.class_names

  @property
  def reads_text(self) -> bool:
    """Whether the model reads text as words (not as token ids): what a recording's transcript can be given to."""
    return self.spec.kinds.get("text") == "text"

  @property
  def audio_config(self):
    """The audio settings recordings are read with (None for a model that reads none)."""
    return inputs_lib.audio_config(self.config.data)

  def _data_config(self, modality: str):
    data = self.config.data
    return data.modalities[modality] if "modalities" in data else data

  # -- compiled programs ------------------------------------------------------------------------
  def bucket_shapes(self) -> list[tuple[int, tuple[int, ...]]]:
    """Every (batch size, sequence lengths) a batch can take: one compiled program each."""
    lengths = list(itertools.product(*(axis.buckets for axis in self.spec.sequences)))
    return [(b, sizes) for b in self.batch_sizes for sizes in lengths]

  def warmup(self) -> None:
    """Compiles (or loads from the persistent cache) the program of every bucket shape."""
    for batch_size, sizes in self.bucket_shapes():
      batch = {}
      lengths = {key: size for axis, size in zip(self.spec.sequences, sizes) for key in axis.keys}
      for key, template in self.spec.example.items():
        shape = (lengths[key],) + template.shape[1:] if key in lengths else template.shape
        batch[key] = np.zeros((batch_size,) + shape, template.dtype)
      jax.block_until_ready(self._predict_step(self._variables, batch))

  def compiled_programs(self) -> int:
    """Programs compiled so far (at most one per bucket shape)."""
    from emojax.train import compiled_programs

    return compiled_programs(self._predict_step)

  # -- running the model ------------------------------------------------------------------------
  def run(self, examples: list[dict]) -> dict[str, np.ndarray]:
    """The model's outputs for model-input examples (the readers' arrays, uint8 images as float32 in [0, 1]), in
    order. Examples are grouped shortest first (as the evaluator groups token batches) into batches of at most the
    largest batch size, each padded to its bucket shape."""
    if not examples:
      return {}
    order = np.arange(len(examples))
    if self.spec.sequences:
      axis = self.spec.sequences[0]
      order = np.argsort([axis.length(e) for e in examples], kind="stable")
    largest = self.batch_sizes[-1]
    chunks = []
    for start in range(0, len(examples), largest):
      rows = order[start : start + largest]
      size = next(b for b in self.batch_sizes if b >= len(rows))
      batch, _ = inputs_lib.batch_of([examples[i] for i in rows], self.spec, size)
      outputs = self._predict_step(self._variables, batch)
      chunks.append({k: np.asarray(v)[: len(rows)] for k, v in outputs.items()})
    outputs = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return {k: v[inverse] for k, v in outputs.items()}

  def run_dataset(self, dataset) -> dict[str, np.ndarray]:
    """Outputs for every row of a reader's `Dataset` (its arrays are this model's inputs), in dataset order."""
    keys = [k for k in self.spec.example if k in dataset.model_inputs or k in dataset.arrays]
    missing = sorted(set(self.spec.example) - set(keys))
    if missing:
      raise InputError(f"The dataset lacks inputs {missing} this model reads; it holds {sorted(dataset.arrays)}.")
    return self.run([pipeline.decode(dataset[i], keys) for i in range(len(dataset))])

  # -- predicting -------------------------------------------------------------------------------
  def predict(
    self,
    face=None,
    audio=None,
    text=None,
    *,
    detect: str = "haar",
    sample_rate: int | None = None,
    transcribe: bool = False,
  ) -> Prediction:
    """Predicts for one input: a picture (`face`), a recording (`audio`; samples need `sample_rate`) and/or a
    text (a string, or a list of strings read as one input), as far as the model reads them."""
    return self.predict_batch(
      faces=None if face is None else [face],
      audios=None if audio is None else [audio],
      texts=None if text is None else [text],
      detect=detect,
      sample_rate=sample_rate,
      transcribe=transcribe,
    )[0]

  def predict_batch(
    self,
    faces=None,
    audios=None,
    texts=None,
    *,
    detect: str = "haar",
    sample_rate: int | None = None,
    transcribe: bool = False,
  ) -> list[Prediction]:
    """One `Prediction` per item; the lists given must have one entry per item (None for an absent modality of an
    end-to-end fusion model). All items run through the model together, in bucket-sized batches.

    `transcribe=True`: each recording's words (Whisper base, `emojax.speech_to_text`) come back as the
    prediction's `transcript`, and a model that also reads text scores them as the item's text where none is
    given: the published design's path from a voice to the text branch."""
    given = {m: v for m, v in (("face", faces), ("speech", audios), ("text", texts)) if v is not None}
    if not given:
      raise InputError(f"Nothing to predict: this model reads {self._reads()}.")
    for modality, items in given.items():
      if isinstance(items, (str, bytes)) or not hasattr(items, "__len__"):
        raise InputError(
          f"predict_batch takes a list per modality; {self._argument(modality)}s is {type(items).__name__}."
        )
    unknown = [m for m in given if m not in self.modalities]
    if unknown:
      unused = ", ".join(self._argument(m) for m in unknown)
      raise InputError(
        f"This model reads {self._reads()}; it cannot use {unused} (bundle inputs: {dict(self.spec.kinds)})."
      )
    counts = {m: len(v) for m, v in given.items()}
    if len(set(counts.values())) != 1:
      raise InputError(
        f"predict_batch got lists of different lengths {counts}: give one entry per item "
        "(None where an item lacks a modality)."
      )
    count = next(iter(counts.values()))
    items = [{m: given[m][i] for m in given if given[m][i] is not None} for i in range(count)]
    transcripts = self._transcripts(items, sample_rate) if transcribe else [None] * count
    predictions = self._predict_items(items, detect, sample_rate)
    for prediction, transcript in zip(predictions, transcripts):
      prediction.transcript = None if transcript is None else transcript.to_dict()
    return predictions

  def _predict_items(self, items: list[dict], detect: str, sample_rate) -> list[Prediction]:
    if self.fusion:
      return self._predict_fusion(items, detect, sample_rate)
    modality = self.modalities[0]
    if any(modality not in item for item in items):
      raise InputError(f"This model reads {self._reads()}: every item needs {self._argument(modality)}=.")
    sources = [item[modality] for item in items]
    if modality == "face":
      return self._predict_faces(sources, detect)
    if modality == "speech":
      return self._predict_speech(sources, sample_rate)
    return self._predict_texts(sources)

  def _transcripts(self, items: list[dict], sample_rate) -> list:
    """Each item's recording transcribed (None without one); the text of items that have none, where the model
    reads text. Whisper reads the whole recording, at its own 16 kHz."""
    from emojax import pretrained, speech_to_text
    from emojax.data import audio as audio_lib

    if "speech" not in self.modalities:
      raise InputError(f"transcribe=True needs a model that reads audio; this one reads {self._reads()}.")
    text_key = "text" if self.reads_text else "transcript"
    for item in items:  # a file object is read once, here: transcription and the model both need its bytes
      if hasattr(item.get("speech"), "read"):
        item["speech"] = item["speech"].read()
    try:
      transcripts = speech_to_text.fill_missing_text(items, sample_rate, self.config, text_key=text_key)
    except pretrained.MissingPretrainedWeights as error:
      raise InputError(f"transcribe=True: {error}") from None
    except (audio_lib.BadAudio, ValueError, FileNotFoundError) as error:
      raise InputError(f"audio: {error}") from None
    for item, transcript in zip(items, transcripts):
      if transcript is not None and not transcript.text.strip():  # no words heard: the text branch stays absent
        item.pop(text_key, None)
      item.pop("transcript", None)
    return transcripts

  def _reads(self) -> str:
    return " and ".join(f"{self._argument(m)} ({kind})" for m, kind in self.spec.kinds.items())

  @staticmethod
  def _argument(modality: str) -> str:
    return {"face": "face", "speech": "audio", "text": "text"}[modality]

  # -- single-modality models --------------------------------------------------------------------
  def _probabilities(self, logits: np.ndarray) -> np.ndarray:
    return metrics.class_probabilities(logits, self.label_space.multi_label)

  def _single_fused(self, modality: str, logits: np.ndarray) -> FusedResult | None:
    """The Ekman-7 view of one modality's logits [N, C] (their mean distribution when N > 1)."""
    if self.label_space.ekman_matrix is None:
      return None
    ekman = self.label_space.ekman7_probabilities(logits).mean(0)
    return FusedResult(
      _scores(labels_lib.EKMAN7, ekman),
      labels_lib.EKMAN7[int(ekman.argmax())],
      f"single modality ({modality})",
      [modality],
      {modality: 1.0},
      "single modality",
    )

  def _predict_faces(self, sources, detect: str) -> list[Prediction]:
    crops, reasons = [], []
    for index, source in enumerate(sources):
      try:
        faces, reason = inputs_lib.face_examples(source, detect)
      except InputError as error:
        raise InputError(f"{error}" if len(sources) == 1 else f"item {index}: {error}") from None
      crops.append(faces)
      reasons.append(reason)
    outputs = self.run([{"image": crop.image} for faces in crops for crop in faces])
    results, row = [], 0
    for faces, reason in zip(crops, reasons):
      rows = slice(row, row + len(faces))
      row += len(faces)
      if not faces:
        results.append(Prediction(faces=[], reasons={"face": reason, "fused": "no face"}))
        continue
      logits = outputs["logits"][rows]
      probabilities = self._probabilities(logits)
      confidence = outputs.get("confidence")
      face_results = [
        FaceResult(
          list(crop.box),
          _scores(self.class_names, p),
          self.class_names[int(p.argmax())],
          None if confidence is None else round(float(confidence[rows][i]), 6),
        )
        for i, (crop, p) in enumerate(zip(faces, probabilities))
      ]
      # The picture as a whole: its largest face (faces come largest first), as an end-to-end model reads it.
      results.append(Prediction(faces=face_results, fused=self._single_fused("face", logits[:1])))
    return results

  def _windows(self, sources, sample_rate, data_config) -> list[tuple[list[inputs_lib.SpeechWindow], float]]:
    recordings = []
    for index, source in enumerate(sources):
      try:
        recordings.append(
          inputs_lib.speech_windows(source, data_config, self.hop_seconds, self.long_recording_seconds, sample_rate)
        )
      except InputError as error:
        raise InputError(f"{error}" if len(sources) == 1 else f"item {index}: {error}") from None
    return recordings

  def _speech_result(self, windows, seconds, probabilities, names) -> SpeechResult:
    mean = probabilities.mean(0)
    timeline = [
      WindowResult(round(w.start, 3), round(w.end, 3), _scores(names, p), names[int(p.argmax())])
      for w, p in zip(windows, probabilities)
    ]
    return SpeechResult(_scores(names, mean), names[int(mean.argmax())], round(seconds, 3), timeline)

  def _predict_speech(self, sources, sample_rate) -> list[Prediction]:
    recordings = self._windows(sources, sample_rate, self.config.data)
    outputs = self.run([w.example for windows, _ in recordings for w in windows])
    results, row = [], 0
    for windows, seconds in recordings:
      logits = outputs["logits"][row : row + len(windows)]
      row += len(windows)
      probabilities = self._probabilities(logits)
      speech = self._speech_result(windows, seconds, probabilities, self.class_names)
      # The clip's Ekman view: the mean over its windows.
      results.append(Prediction(speech=speech, fused=self._single_fused("speech", logits)))
    return results

  def _text_lists(self, sources) -> list[list[str]]:
    lists = []
    for index, source in enumerate(sources):
      texts = [source] if isinstance(source, str) else list(source) if isinstance(source, (list, tuple)) else None
      if not texts:
        where = "" if len(sources) == 1 else f"item {index}: "
        raise InputError(
          f"{where}text must be a string or a non-empty list of strings, got "
          f"{type(source).__name__ if texts is None else 'an empty list'}"
        )
      lists.append(texts)
    return lists

  def _text_results(self, texts, outputs, rows) -> list[TextResult]:
    logits = outputs["logits"][rows]
    probabilities = self._probabilities(logits)
    thresholds = self.trained.thresholds
    if self.label_space.multi_label and thresholds is None:
      thresholds = np.full(len(self.class_names), 0.5, np.float32)
    sentiment_names = self.label_space.sentiment_names
    has_sentiment = "sentiment_logits" in outputs and sentiment_names
    sentiments = metrics.class_probabilities(outputs["sentiment_logits"][rows], False) if has_sentiment else None
    results = []
    for i, (text, p) in enumerate(zip(texts, probabilities)):
      top = self.class_names[int(p.argmax())]
      chosen = (
        [n for n, q, t in zip(self.class_names, p, thresholds) if q >= t] if self.label_space.multi_label else [top]
      )
      sentiment = sentiment_label = None
      if has_sentiment:
        sentiment, sentiment_label = (
          _scores(sentiment_names, sentiments[i]),
          sentiment_names[int(sentiments[i].argmax())],
        )
      results.append(TextResult(text, _scores(self.class_names, p), top, chosen, sentiment, sentiment_label))
    return results

  def _predict_texts(self, sources) -> list[Prediction]:
    lists = self._text_lists(sources)
    flat = [t for texts in lists for t in texts]
    try:
      examples = inputs_lib.text_examples(flat, self.config.data)
    except InputError as error:
      raise InputError(f"{error}") from None
    outputs = self.run(examples)
    results, row = [], 0
    for texts in lists:
      rows = slice(row, row + len(texts))
      row += len(texts)
      results.append(
        Prediction(
          texts=self._text_results(texts, outputs, rows), fused=self._single_fused("text", outputs["logits"][rows])
        )
      )
    return results

  # -- end-to-end fusion ------------------------------------------------------------------------
  def _predict_fusion(self, items: list[dict], detect: str, sample_rate) -> list[Prediction]:
    """Each item becomes one tuple per speech window (one without speech): the largest face, the window, the text;
    absent modalities are zeros marked absent, as in training. An item's fused prediction is the mean over its
    windows; each modality's own result is its encoder's Ekman-7 distribution (the fusion head's input)."""
    order = list(self.config.model.encoders)
    examples, plans = [], []
    for index, item in enumerate(items):
      where = "" if len(items) == 1 else f"item {index}: "
      if not item:
        raise InputError(f"{where}nothing given: this model reads {self._reads()}.")
      present = {m: 0.0 for m in order}
      base, reasons, windows, seconds, face_boxes, text_value = {}, {}, [None], 0.0, None, None
      for modality in order:
        base.update(self.spec.zeros(f"{modality}_"))
      try:
        if "face" in item:
          faces, reason = inputs_lib.face_examples(item["face"], detect)
          face_boxes = [list(f.box) for f in faces]
          if faces:
            base["face_image"], present["face"] = faces[0].image, 1.0
          else:
            reasons["face"] = reason
        if "text" in item:
          text_value = item["text"]
          if self.spec.kinds["text"] == "token_ids":
            base.update(inputs_lib.token_ids_example(text_value, self.spec))
          else:
            if not isinstance(text_value, str):
              raise InputError(
                "an end-to-end fusion model reads one text per item (a string); use predict_batch for several"
              )
            base.update(
              {f"text_{k}": v for k, v in inputs_lib.text_examples([text_value], self._data_config("text"))[0].items()}
            )
          present["text"] = 1.0
        if "speech" in item:
          if self.spec.kinds["speech"] == "frames":
            windows = [inputs_lib.SpeechWindow(0.0, 0.0, inputs_lib.frames_example(item["speech"], self.spec))]
          else:
            windows, seconds = inputs_lib.speech_windows(
              item["speech"], self._data_config("speech"), self.hop_seconds, self.long_recording_seconds, sample_rate
            )
            for w in windows:
              w.example = {f"speech_{k}": v for k, v in w.example.items()}
          present["speech"] = 1.0
      except InputError as error:
        raise InputError(f"{where}{error}") from None
      if not any(present.values()):
        raise InputError(f"{where}no usable modality: {'; '.join(f'{m}: {r}' for m, r in reasons.items())}.")
      start = len(examples)
      for window in windows:
        example = dict(base)
        if window is not None:
          example.update(window.example)
        example["present"] = np.asarray([present[m] for m in order], np.float32)
        examples.append(example)
      plans.append(
        (start, len(windows), present, reasons, face_boxes, text_value, windows if windows != [None] else None, seconds)
      )
    outputs = self.run(examples)
    return [self._fusion_prediction(outputs, *plan, order) for plan in plans]

  def _weighting(self) -> str:
    """What an end-to-end model's `modality_weights` are, from its fusion head's config."""
    head = self.config.model.fusion
    if "feature_weighting" in head:
      return {
        "none": "presence (feature_weighting=none: present modalities enter the fusion head equally)",
        "gate": "learned gates (feature_weighting=gate)",
        "adaptive": "adaptive weights over the present modalities (feature_weighting=adaptive)",
      }.get(head.feature_weighting, head.feature_weighting)
    if "confidence" in head:
      return f"confidences ({head.confidence})"
    return "presence (mean of the present modalities' probabilities)"

  def _fusion_prediction(
    self, outputs, start, count, present, reasons, face_boxes, text_value, windows, seconds, order
  ) -> Prediction:
    rows = slice(start, start + count)
    names = labels_lib.EKMAN7
    fused = self._probabilities(outputs["logits"][rows]).mean(0)
    per_modality = outputs["modality_probabilities"][rows]  # [windows, M, 7]
    weights = outputs.get("modality_weights")
    used = [m for m in order if present[m]]
    weight_map = (
      {m: round(float(w), 6) for m, w in zip(order, np.asarray(weights[rows]).mean(0)) if present[m]}
      if weights is not None
      else {m: round(1.0 / len(used), 6) for m in used}
    )
    result = Prediction(
      fused=FusedResult(
        _scores(names, fused),
        names[int(fused.argmax())],
        self.config.model.fusion.name,
        used,
        weight_map,
        self._weighting(),
      ),
      reasons=dict(reasons),
    )
    for modality, slot in zip(order, range(len(order))):
      if modality == "face" and face_boxes is not None:
        p = per_modality[0, slot]
        result.faces = [FaceResult(face_boxes[0], _scores(names, p), names[int(p.argmax())])] if present["face"] else []
      elif modality == "speech" and windows is not None:
        result.speech = self._speech_result(windows, seconds, per_modality[:, slot], names)
      elif modality == "text" and present["text"]:
        p = per_modality[0, slot]
        text = text_value if isinstance(text_value, str) else [int(t) for t in np.asarray(text_value)]
        result.texts = [TextResult(text, _scores(names, p), names[int(p.argmax())], [names[int(p.argmax())]])]
    for modality in order:
      if not present[modality] and modality not in result.reasons:
        result.reasons[modality] = "not given"
    return result
