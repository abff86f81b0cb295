"""Using trained models: bundles (`bundle.py` reads them, `export.py` writes them), the `Recognizer`
(`recognizer.py`), scoring any model on any
labelled corpus (`scoring.py`) and the `emojax predict / evaluate / export-model` commands (`cli.py`).

    from emojax.inference import Recognizer
    recognizer = Recognizer.load("bundles/fer_resattn")
    print(recognizer.predict(face="photo.jpg").to_dict())
"""

from emojax.inference.bundle import BundleError, TrainedModel, load, load_bundle, load_run
from emojax.inference.export import export_bundle
from emojax.inference.inputs import InputError
from emojax.inference.recognizer import (
  FaceResult,
  FusedResult,
  Prediction,
  Recognizer,
  SpeechResult,
  TextResult,
  WindowResult,
)

__all__ = [
  "BundleError",
  "FaceResult",
  "FusedResult",
  "InputError",
  "Prediction",
  "Recognizer",
  "SpeechResult",
  "TextResult",
  "TrainedModel",
  "WindowResult",
  "export_bundle",
  "load",
  "load_bundle",
  "load_run",
]
