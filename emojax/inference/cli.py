"""`emojax predict`, `emojax evaluate` and `emojax export-model`: trained models from the command line.

  emojax export-model --workdir runs/fer_resattn [--out bundles/fer_resattn] [--checkpoint best|latest]
  emojax predict --model bundles/fer_resattn --face photo.jpg [--face other.png] [--detect none] [--json]
  emojax predict --model bundles/ravdess_conformer --audio speech.wav
  emojax predict --model bundles/goemotions_minilm --text "I can't believe it worked" --text "so sad"
  emojax evaluate --model bundles/ravdess_conformer --data tess --root /data/TESS --split all
  emojax evaluate --model bundles/goemotions_minilm --data labelled_text --root corpus.csv \\
      --text-column sentence --label-column emotion --split all

`--model` is a bundle folder or a training workdir. A user error (a missing file, a picture that is not an image,
silent audio, a corpus in the wrong layout, a damaged bundle) prints one line saying what is wrong and exits
with status 2; `--traceback` shows where it came from.
"""

import argparse
import json

from emojax.cli import run_command


def _common(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
    "--checkpoint",
    choices=("best", "latest"),
    default="best",
    help="which checkpoint of a training workdir (bundles hold one)",
  )
  parser.add_argument("--traceback", action="store_true", help="show the traceback of an error")


# ----------------------------------------------------------------------------------------------
# export-model
# ----------------------------------------------------------------------------------------------
def export_main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(
    prog="emojax export-model",
    description=(
      "Writes a self-contained bundle of a training workdir: config, parameters and batch-norm statistics, labels, "
      "preprocessing and tokenizer files, thresholds and validation metrics."
    ),
  )
  parser.add_argument("--workdir", required=True, help="the training run")
  parser.add_argument("--out", default="", help="bundle folder (default: <workdir>/bundle)")
  _common(parser)

  def body(args):
    from emojax.inference import bundle, export, scoring

    out = export.export_bundle(args.workdir, args.out or None, args.checkpoint)
    manifest = bundle.read_manifest(out)
    validation = manifest["validation"]
    figures = "  ".join(
      f"{k} {validation[k]:.4f}"
      for k in ("accuracy", "balanced_accuracy", "macro_f1")
      if isinstance(validation.get(k), float)
    )
    print(
      f"Bundle: {out} ({bundle.human_size(bundle.bundle_size(out))}; weights "
      f"{bundle.human_size(manifest['files'][bundle.WEIGHTS]['bytes'])})"
    )
    print(
      f"Model: {manifest['model']} reading {manifest['inputs']}, step {manifest['source']['step']}; validation "
      f"({validation['dataset']} {validation['split']}, {validation['num_examples']} examples): {figures}"
    )
    argument = {"face": "face='photo.jpg'", "speech": "audio='speech.wav'", "text": "text='what a day'"}
    flags = {"face": "--face photo.jpg", "speech": "--audio speech.wav", "text": "--text 'what a day'"}
    raw = [m for m, kind in manifest["inputs"].items() if kind not in ("frames", "token_ids")]
    print(
      "Use it:\n"
      "  from emojax.inference import Recognizer\n"
      f"  recognizer = Recognizer.load({str(out)!r})\n"
      f"  print(recognizer.predict({', '.join(argument[m] for m in raw)}).to_dict())\n"
      f"  emojax predict --model {out} {' '.join(flags[m] for m in raw)}\n"
      f"  emojax evaluate --model {out} --data {validation['dataset']}"
      f"{' --root <its folder>' if validation['dataset'] in scoring.READ_FROM_ROOT else ''}"
    )
    if len(raw) < len(manifest["inputs"]):
      print(
        "  (trained on synthetic tuples: its speech input is a feature matrix [frames, bins] and its text token "
        "ids, given as arrays: recognizer.predict(face=..., audio=features, text=ids))"
      )
    return 0

  return run_command("export-model", parser, argv, body)


# ----------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------
def predict_main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(
    prog="emojax predict",
    description=(
      "Labels pictures, recordings and texts with a trained model (bundle or workdir). Each --face, --audio and "
      "--text is one item; an end-to-end fusion model reads the i-th of each as one input."
    ),
  )
  parser.add_argument("--model", required=True, help="bundle folder or training workdir")
  parser.add_argument("--face", action="append", default=[], help="a picture (repeatable)")
  parser.add_argument("--audio", action="append", default=[], help="a recording (repeatable)")
  parser.add_argument("--text", action="append", default=[], help="a text (repeatable)")
  parser.add_argument(
    "--detect",
    choices=("haar", "none"),
    default="haar",
    help="find faces (haar) or take each picture as an aligned face crop (none)",
  )
  parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
  _common(parser)

  def body(args):
    from emojax.inference import Recognizer
    from emojax.inference.inputs import InputError

    given = {"face": args.face, "speech": args.audio, "text": args.text}
    if not any(given.values()):
      raise InputError("nothing to predict: give --face, --audio and/or --text.")
    recognizer = Recognizer.load(args.model, which=args.checkpoint)
    count = max(len(v) for v in given.values())
    if recognizer.config.model.name != "fusion.end_to_end":
      items = {m: v for m, v in given.items() if v}
    else:  # the i-th of each modality is one input; a shorter list leaves later inputs without that modality
      items = {m: v + [None] * (count - len(v)) for m, v in given.items() if v}
    results = recognizer.predict_batch(
      faces=items.get("face"), audios=items.get("speech"), texts=items.get("text"), detect=args.detect
    )
    described = [
      {"input": {m: items[m][i] for m in items if items[m][i] is not None}, **r.to_dict()}
      for i, r in enumerate(results)
    ]
    if args.json:
      print(json.dumps(described if len(described) > 1 else described[0], indent=2))
    else:
      print("\n\n".join(readable(d) for d in described))
    return 0

  return run_command("predict", parser, argv, body)


def _top(probabilities: dict, count: int = 3) -> str:
  ranked = sorted(probabilities.items(), key=lambda item: -item[1])
  first, rest = ranked[0], ranked[1:count]
  return f"{first[0]} {first[1]:.2f}" + (f" ({', '.join(f'{n} {p:.2f}' for n, p in rest)})" if rest else "")


def readable(result: dict) -> str:
  """A prediction as a few lines of text."""
  lines = [" + ".join(f"{m} {v}" for m, v in result["input"].items())]
  reasons = result.get("reasons", {})
  if result.get("faces") is not None:
    if not result["faces"]:
      lines.append(f"  faces: none ({reasons.get('face', 'no face')})")
    for number, face in enumerate(result["faces"], 1):
      confidence = f"  confidence {face['confidence']:.2f}" if face.get("confidence") is not None else ""
      lines.append(f"  face {number} at {face['box']}: {_top(face['probabilities'])}{confidence}")
  speech = result.get("speech")
  if speech:
    lines.append(
      f"  speech ({speech['seconds']:.1f} s, {len(speech['windows'])} window"
      f"{'s' if len(speech['windows']) != 1 else ''}): {_top(speech['probabilities'])}"
    )
    if len(speech["windows"]) > 1:
      lines += [f"    {w['start']:6.1f}-{w['end']:6.1f} s  {_top(w['probabilities'], 1)}" for w in speech["windows"]]
  for text in result.get("texts") or []:
    labels = f"  labels: {', '.join(text['labels']) or 'none above threshold'}"
    sentiment = f"  sentiment: {_top(text['sentiment'], 1)}" if text.get("sentiment") else ""
    lines.append(f"  text {json.dumps(text['text'])[:60]}: {_top(text['probabilities'])}{labels}{sentiment}")
  fused = result.get("fused")
  if fused:
    weights = ", ".join(f"{m} {w:.2f}" for m, w in fused["weights"].items())
    lines.append(f"  Ekman-7 ({fused['method']}; weights {weights}): {_top(fused['probabilities'])}")
  elif "fused" in reasons:
    lines.append(f"  Ekman-7: none ({reasons['fused']})")
  for modality, reason in reasons.items():
    if modality not in ("face", "fused"):
      lines.append(f"  {modality}: {reason}")
  return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------
def evaluate_main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(
    prog="emojax evaluate",
    description=(
      "Scores a model (or the average of several) on a labelled corpus with training's reports; label spaces "
      "that differ are compared through Ekman-7."
    ),
  )
  parser.add_argument("--model", action="append", required=True, help="bundle or workdir (repeat to average)")
  parser.add_argument(
    "--data",
    required=True,
    help="fer2013, clips, ravdess, tess, crema_d, goemotions, labelled_text (or the model's own dataset)",
  )
  parser.add_argument("--root", default="", help="the corpus's folder (or file, for labelled_text)")
  parser.add_argument("--split", default="validation", help="validation (default), train, test, or all")
  parser.add_argument("--out", default="", help="report folder (default: evaluations/<models>_on_<data>_<split>)")
  parser.add_argument("--text-column", default=None, help="labelled_text: the text column (name or index)")
  parser.add_argument("--label-column", default=None, help="labelled_text: the label column (name or index)")
  parser.add_argument("--delimiter", default=None, help="labelled_text: field separator (default by suffix)")
  parser.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="any other field of the corpus's data config, e.g. --set fold=0",
  )
  parser.add_argument("--json", action="store_true", help="print the report as JSON")
  _common(parser)

  def body(args):
    from emojax import metrics as metrics_lib
    from emojax.inference import scoring

    overrides = scoring.parse_overrides(args.set)
    for key, value in (
      ("text_column", args.text_column),
      ("label_column", args.label_column),
      ("delimiter", args.delimiter),
    ):
      if value is not None:
        overrides[key] = value
    report, out = scoring.evaluate_models(
      args.model, args.data, args.root, args.split, args.out, overrides, args.checkpoint
    )
    if args.json:
      print(json.dumps(report, indent=2))
      return 0
    everything = report["all"]
    print(
      f"{report['model']} on {args.data} {args.split} ({everything['num_examples']} examples): "
      + "  ".join(f"{k} {everything[k]:.4f}" for k in metrics_lib.HEADLINE)
    )
    for name, metrics in report.items():
      if name != "all" and isinstance(metrics, dict) and "accuracy" in metrics and "num_examples" in metrics:
        print(
          f"  {name} ({metrics['num_examples']}): accuracy {metrics['accuracy']:.4f}  macro_f1 "
          f"{metrics['macro_f1']:.4f}"
        )
    if "label_mapping" in report:
      mapping = report["label_mapping"]
      print(
        f"  compared in Ekman-7: {', '.join(mapping['compared_classes'])} ({mapping['rows_compared']} rows; "
        f"{mapping['rows_without_compared_class']} without a compared class)"
      )
    for row in report.get("members", []):
      print(f"  {row['member']}: " + "  ".join(f"{k} {row[k]:.4f}" for k in metrics_lib.HEADLINE))
    print(f"Report: {out}/report.md")
    return 0

  return run_command("evaluate", parser, argv, body)
