"""Hugging Face checkpoint folders -> Flax params, without torch: what every ported encoder shares.

Weights come from `model.safetensors` or, for older hub checkpoints, `pytorch_model.bin`. The latter is a
pickle, and unpickling runs whatever it names, so it is read with an unpickler that only rebuilds tensors
and refuses every other global. Each encoder family (`wav2vec2.py`, `bert.py`, `deberta.py`) describes
where its Flax parameters come from as a `ParamPlan`; the plan checks that nothing is missing and that
every shape agrees with the architecture of config.json before any weight is used.
"""

import collections
import json
import pickle
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
from flax import traverse_util
from safetensors.numpy import load_file

WEIGHT_FILES = (
  "model.safetensors",
  "model.safetensors.index.json",
  "pytorch_model.bin",
  "pytorch_model.bin.index.json",
)
_TORCH_DTYPES = {
  "float32": np.float32,
  "float": np.float32,
  "float64": np.float64,
  "double": np.float64,
  "float16": np.float16,
  "half": np.float16,
  "bfloat16": ml_dtypes.bfloat16,
  "int64": np.int64,
  "long": np.int64,
  "int32": np.int32,
  "int": np.int32,
  "int16": np.int16,
  "short": np.int16,
  "int8": np.int8,
  "char": np.int8,
  "uint8": np.uint8,
  "byte": np.uint8,
  "bool": np.bool_,
}


def _rebuild_tensor(storage, offset, size, stride, *unused):
  strides = [step * storage.itemsize for step in stride]
  return np.lib.stride_tricks.as_strided(storage[offset:], tuple(size), strides).copy()


class _TensorOnlyUnpickler(pickle.Unpickler):
  """Reads torch's zip format (`<name>/data.pkl` + `<name>/data/<key>` storages) into numpy arrays."""

  def __init__(self, archive: zipfile.ZipFile, prefix: str, path: Path):
    super().__init__(archive.open(f"{prefix}data.pkl"))
    self.archive, self.prefix, self.path, self.storages = archive, prefix, path, {}
    byteorder = f"{prefix}byteorder"
    self.big_endian = byteorder in archive.namelist() and archive.read(byteorder).strip() == b"big"

  def find_class(self, module, name):
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
      return _rebuild_tensor
    if (module, name) == ("torch._utils", "_rebuild_parameter"):
      return lambda data, requires_grad, backward_hooks: data
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if module == "torch" and name.endswith("Storage") and name[: -len("Storage")].lower() in _TORCH_DTYPES:
      return np.dtype(_TORCH_DTYPES[name[: -len("Storage")].lower()])
    if module == "torch" and name in _TORCH_DTYPES:
      return np.dtype(_TORCH_DTYPES[name])
    raise pickle.UnpicklingError(
      f"{self.path} asks to run {module}.{name}, which a plain state dict of tensors never needs; refusing to "
      f"unpickle it. Convert the checkpoint to model.safetensors where torch is installed and trusted."
    )

  def persistent_load(self, persistent_id):
    kind, dtype, key, _location, _numel = persistent_id
    if kind != "storage" or not isinstance(dtype, np.dtype):
      raise pickle.UnpicklingError(f"{self.path}: unexpected storage reference {persistent_id!r}.")
    if key not in self.storages:
      dtype = dtype.newbyteorder(">") if self.big_endian else dtype
      self.storages[key] = np.frombuffer(self.archive.read(f"{self.prefix}data/{key}"), dtype)
    return self.storages[key]


def _load_torch_pickle(path: Path) -> dict:
  if not zipfile.is_zipfile(path):
    raise ValueError(
      f"{path} is in torch's legacy (pre-1.6) format, which is not supported; re-save it as "
      f"model.safetensors (or with a recent torch.save) where torch is installed."
    )
  with zipfile.ZipFile(path) as archive:
    pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path} has {len(pickles)} data.pkl entries; expected one in a torch.save archive.")
    state_dict = _TensorOnlyUnpickler(archive, pickles[0][: -len("data.pkl")], path).load()
  return {name: np.asarray(value) for name, value in state_dict.items()}


def load_hf_state_dict(folder) -> dict[str, np.ndarray]:
  """Every tensor of a Hugging Face checkpoint folder by its torch name, as numpy arrays."""
  folder = Path(folder)
  fix = (
    "Download the model on a machine with hub access (`hf download <model id> --local-dir <folder>`) "
    "and copy the whole folder here."
  )
  if not folder.is_dir():
    raise FileNotFoundError(f"No checkpoint folder at {folder}. {fix}")
  path = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
  if path is None:
    raise FileNotFoundError(f"{folder} holds none of the weight files {', '.join(WEIGHT_FILES)}. {fix}")
  files = [path]
  if path.name.endswith(".index.json"):
    files = [folder / shard for shard in sorted(set(json.loads(path.read_text())["weight_map"].values()))]
  state_dict = {}
  for file in files:
    state_dict.update(load_file(file) if file.suffix == ".safetensors" else _load_torch_pickle(file))
  return state_dict


def read_hf_config(path, family: str) -> dict:
  """The fields of a Hugging Face `config.json`, or an error that says the folder is incomplete."""
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(
      f"No config.json at {path}: a Hugging Face {family} folder holds config.json beside "
      "its weights; copy the whole folder, not only the weight file."
    )
  return json.loads(path.read_text())


def backbone_of(state_dict: dict, prefix: str, head_prefixes: tuple[str, ...] = ()) -> dict:
  """The backbone's tensors of a base model or of any task model (`<prefix>.` names, heads beside them)."""
  prefixed = any(name.startswith(prefix) for name in state_dict)
  return {
    name.removeprefix(prefix): value
    for name, value in state_dict.items()
    if (name.startswith(prefix) or not prefixed) and not name.startswith(head_prefixes)
  }


def transpose_dense(array):
  return array.T  # torch Linear [out, in] -> Dense [in, out]


def transpose_conv1d(array):
  return array.transpose(2, 1, 0)  # torch Conv1d [out, in/groups, k] -> Conv [k, in/groups, out]


class ParamPlan:
  """Where each Flax parameter comes from in a torch state dict, and how its layout changes."""

  def __init__(self):
    self.entries = []  # (flax path, torch name, layout function or None)

  def add(self, flax_path: tuple, torch_module: str, layout=None, leaf: str = "kernel", bias: bool = True):
    self.entries.append((flax_path + (leaf,), f"{torch_module}.weight", layout))
    if bias:
      self.entries.append((flax_path + ("bias",), f"{torch_module}.bias", None))

  def dense(self, flax_path: tuple, torch_module: str, bias: bool = True):
    self.add(flax_path, torch_module, transpose_dense, bias=bias)

  def norm(self, flax_path: tuple, torch_module: str):
    self.add(flax_path, torch_module, None, leaf="scale")

  def table(self, flax_path: tuple, torch_module: str):
    self.add(flax_path, torch_module, None, leaf="embedding", bias=False)

  def build(self, backbone: dict, expected_params, extra: dict | None = None, missing: list | None = None) -> dict:
    """Flax params from `backbone`, checked against `expected_params` (the `jax.eval_shape` of init).

    `extra` holds parameters a family computes itself (e.g. a weight-normed conv), `missing` the torch names
    it already found absent.
    """
    missing = list(missing or []) + [name for _, name, _ in self.entries if name not in backbone]
    if missing:
      raise ValueError(
        f"The checkpoint lacks {len(missing)} parameter(s) this config needs: "
        f"{', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}. "
        "Check that config.json belongs to the same model as the weights."
      )
    flat = {
      path: (layout or (lambda array: array))(np.asarray(backbone[name], np.float32))
      for path, name, layout in self.entries
    }
    flat.update(extra or {})
    torch_names = {path: name for path, name, _ in self.entries}
    mismatched = [
      f"{torch_names.get(path, 'nothing')} -> {'/'.join(path)}: checkpoint "
      f"{flat[path].shape if path in flat else 'nothing'}, config {leaf.shape}"
      for path, leaf in traverse_util.flatten_dict(expected_params).items()
      if path not in flat or flat[path].shape != leaf.shape
    ]
    if mismatched:
      raise ValueError(
        f"Checkpoint shapes disagree with config.json: {'; '.join(mismatched)}. Check that "
        "config.json belongs to the same model as the weights."
      )
    return traverse_util.unflatten_dict(flat)


# ----------------------------------------------------------------------------------------------
# CTranslate2 model.bin (faster-whisper's format), read without ctranslate2.
# ----------------------------------------------------------------------------------------------
# Layout (CTranslate2's src/models/model.cc `Model::load`, python/ctranslate2/specs/model_spec.py `_serialize`), all
# little-endian: uint32 binary version; string spec name; uint32 spec revision; uint32 variable count; per variable:
# string name, uint8 rank, uint32 dims[rank], uint8 dtype id, uint32 byte count, the bytes (row-major); then uint32
# alias count and (string alias, string target) pairs. A string is a uint16 length counting a closing NUL, then
# the bytes and that NUL. dtype ids follow CTranslate2's DataType enum.
CTRANSLATE2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, ml_dtypes.bfloat16)
CTRANSLATE2_BINARY_VERSIONS = (4, 5, 6)  # 4 introduced the dtype id this reader relies on; 6 is the current one


class CTranslate2Model:
  """The spec name, its revision and every variable of a CTranslate2 `model.bin`, aliases resolved."""

  def __init__(self, spec: str, revision: int, variables: dict[str, np.ndarray], aliases: dict[str, str]):
    self.spec, self.revision, self.variables, self.aliases = spec, revision, variables, aliases

  def __getitem__(self, name: str) -> np.ndarray:
    return self.variables[self.aliases.get(name, name)]

  def __contains__(self, name: str) -> bool:
    return self.aliases.get(name, name) in self.variables


def read_ctranslate2_model(path) -> CTranslate2Model:
  """Parses a CTranslate2 `model.bin` (or a folder holding one) into numpy arrays, memory-mapped, no copies.

  Errors name the file and the byte offset where it stops making sense (truncated, another format, a newer
  binary version, an unknown dtype, a byte count that disagrees with the shape).
  """
  path = Path(path)
  if path.is_dir():
    path = path / "model.bin"
  if not path.is_file():
    raise FileNotFoundError(
      f"No CTranslate2 model.bin at {path}: a CTranslate2 folder holds model.bin beside "
      "config.json (e.g. the Whisper base folder that `python -m emojax.pretrained` prepares)."
    )
  data = np.memmap(path, dtype=np.uint8, mode="r")
  offset = 0

  def take(count: int, what: str) -> np.ndarray:
    nonlocal offset
    if offset + count > len(data):
      raise ValueError(
        f"{path} is truncated: reading {what} needs {count} bytes at offset {offset}, the file has "
        f"{len(data)}. Re-create it (python -m emojax.pretrained rejoins the Whisper parts)."
      )
    chunk = data[offset : offset + count]
    offset += count
    return chunk

  def number(dtype, what: str) -> int:
    return int(take(np.dtype(dtype).itemsize, what).view(np.dtype(dtype).newbyteorder("<"))[0])

  def string(what: str) -> str:
    length = number(np.uint16, f"the length of {what}")
    raw = take(length, what).tobytes()
    if not raw.endswith(b"\0"):
      raise ValueError(
        f"{path}: {what} at offset {offset - length} is not NUL-terminated; not a CTranslate2 model.bin."
      )
    return raw[:-1].decode("utf-8")

  version = number(np.uint32, "the binary version")
  if version not in CTRANSLATE2_BINARY_VERSIONS:
    raise ValueError(
      f"{path}: CTranslate2 binary version {version}; this reader supports "
      f"{CTRANSLATE2_BINARY_VERSIONS} (re-convert the model with a ctranslate2 >= 3 converter), or "
      "the file is not a CTranslate2 model.bin."
    )
  spec = string("the spec name")
  revision = number(np.uint32, "the spec revision")
  variables = {}
  for index in range(number(np.uint32, "the variable count")):
    name = string(f"variable {index}'s name")
    rank = number(np.uint8, f"{name}'s rank")
    shape = tuple(number(np.uint32, f"{name}'s shape") for _ in range(rank))
    type_id = number(np.uint8, f"{name}'s dtype")
    if type_id >= len(CTRANSLATE2_DTYPES):
      raise ValueError(
        f"{path}: variable {name!r} has dtype id {type_id}, not one of CTranslate2's "
        f"{len(CTRANSLATE2_DTYPES)} (float32, int8, int16, int32, float16, bfloat16)."
      )
    dtype = np.dtype(CTRANSLATE2_DTYPES[type_id])
    num_bytes = number(np.uint32, f"{name}'s byte count")
    if num_bytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
      raise ValueError(
        f"{path}: variable {name!r} of shape {shape} and dtype {dtype} claims {num_bytes} bytes; the file is damaged."
      )
    variables[name] = take(num_bytes, name).view(dtype.newbyteorder("<")).reshape(shape)
  aliases = {}
  for _ in range(number(np.uint32, "the alias count")):
    alias = string("an alias")
    aliases[alias] = string(f"the target of alias {alias!r}")
  if offset != len(data):
    raise ValueError(f"{path}: {len(data) - offset} unexpected bytes after the aliases at offset {offset}.")
  return CTranslate2Model(spec, revision, variables, aliases)
