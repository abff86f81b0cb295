"""`emojax <subcommand> ...`: the tools around training, each with its own argparse parser.

`emojax --config ... --workdir ... [--mode ...]` (no subcommand) is `python -m emojax.main`: training and the
modes that work on a training workdir. Subcommands are registered here by module path and imported only when
called, so `emojax --help` stays fast and a subcommand's heavy dependencies load only for it. Each target is a
`main(argv: list[str]) -> int` function.
"""

import importlib
import sys

# What a user can fix (a missing file, a wrong layout, a bad value): one line and exit status 2, not a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)

SUBCOMMANDS = {
  # name: ("module:function", one line of help)
  "explore": ("emojax.explore:main", "exploratory data analysis of a corpus: report.html/.md, figures, summary.json"),
  "predict": ("emojax.inference.cli:predict_main", "label pictures, recordings and texts with a trained model"),
  "evaluate": ("emojax.inference.cli:evaluate_main", "score models (or their average) on any labelled corpus"),
  "export-model": ("emojax.inference.cli:export_main", "write a self-contained bundle of a training workdir"),
  "serve": ("emojax.serve.cli:main", "serve a model: REST API, webcam/microphone streams and a web page (offline)"),
}


def usage() -> str:
  lines = [
    "usage: emojax --config CONFIG --workdir DIR [--mode MODE]   (training and workdir modes; --help)",
    "       emojax <subcommand> [--help]",
    "",
    "subcommands:",
  ]
  lines += [f"  {name:<14} {help_line}" for name, (_, help_line) in sorted(SUBCOMMANDS.items())]
  return "\n".join(lines)


def dispatch(argv: list[str]) -> int | None:
  """Runs the subcommand named by argv[1] and returns its exit code, or None when argv names none."""
  if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
    if len(argv) >= 2 and not argv[1].startswith("-"):
      print(f"emojax: unknown subcommand {argv[1]!r}.\n\n{usage()}", file=sys.stderr)
      return 2
    return None
  target, _ = SUBCOMMANDS[argv[1]]
  module_name, function_name = target.split(":")
  return getattr(importlib.import_module(module_name), function_name)(argv[2:])


def run_command(name: str, parser, argv: list[str], body) -> int:
  """What every subcommand does around its work: parse `argv`, set XLA:CPU up before JAX starts (Eigen
  convolutions, as training runs them) and quiet the logs, then `body(args)`; a user error becomes one line and
  exit status 2 (`--traceback`, where the parser has it, shows where it came from)."""
  import logging

  from emojax import sharding

  args = parser.parse_args(argv)
  sharding.configure_xla_cpu(ynnpack=False)
  logging.getLogger().setLevel(logging.WARNING)
  try:
    return body(args)
  except USER_ERRORS as error:
    if getattr(args, "traceback", False):
      raise
    print(f"emojax {name}: error: {error}", file=sys.stderr)
    return 2
