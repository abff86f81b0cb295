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

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
_TORCH_DTYPES = {"float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
                 "float16": np.float16, "half": np.float16, "bfloat16": ml_dtypes.bfloat16, "int64": np.int64,
                 "long": np.int64, "int32": np.int32, "int": np.int32, "int16": np.int16, "short": np.int16,
                 "int8": np.int8, "char": np.int8, "uint8": np.uint8, "byte": np.uint8, "bool": np.bool_}


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
    if module == "torch" and name.endswith("Storage") and name[:-len("Storage")].lower() in _TORCH_DTYPES:
      return np.dtype(_TORCH_DTYPES[name[:-len("Storage")].lower()])
    if module == "torch" and name in _TORCH_DTYPES:
      return np.dtype(_TORCH_DTYPES[name])
    raise pickle.UnpicklingError(
        f"{self.path} asks to run {module}.{name}, which a plain state dict of tensors never needs; refusing to "
        f"unpickle it. Convert the checkpoint to model.safetensors where torch is installed and trusted.")

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
    raise ValueError(f"{path} is in torch's legacy (pre-1.6) format, which is not supported; re-save it as "
                     f"model.safetensors (or with a recent torch.save) where torch is installed.")
  with zipfile.ZipFile(path) as archive:
    pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path} has {len(pickles)} data.pkl entries; expected one in a torch.save archive.")
    state_dict = _TensorOnlyUnpickler(archive, pickles[0][:-len("data.pkl")], path).load()
  return {name: np.asarray(value) for name, value in state_dict.items()}


def load_hf_state_dict(folder) -> dict[str, np.ndarray]:
  """Every tensor of a Hugging Face checkpoint folder by its torch name, as numpy arrays."""
  folder = Path(folder)
  fix = ("Download the model on a machine with hub access (`hf download <model id> --local-dir <folder>`) "
         "and copy the whole folder here.")
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
    raise FileNotFoundError(f"No config.json at {path}: a Hugging Face {family} folder holds config.json beside "
                            "its weights; copy the whole folder, not only the weight file.")
  return json.loads(path.read_text())


def backbone_of(state_dict: dict, prefix: str, head_prefixes: tuple[str, ...] = ()) -> dict:
  """The backbone's tensors of a base model or of any task model (`<prefix>.` names, heads beside them)."""
  prefixed = any(name.startswith(prefix) for name in state_dict)
  return {name.removeprefix(prefix): value for name, value in state_dict.items()
          if (name.startswith(prefix) or not prefixed) and not name.startswith(head_prefixes)}


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
      raise ValueError(f"The checkpoint lacks {len(missing)} parameter(s) this config needs: "
                       f"{', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}. "
                       "Check that config.json belongs to the same model as the weights.")
    flat = {path: (layout or (lambda array: array))(np.asarray(backbone[name], np.float32))
            for path, name, layout in self.entries}
    flat.update(extra or {})
    torch_names = {path: name for path, name, _ in self.entries}
    mismatched = [f"{torch_names.get(path, 'nothing')} -> {'/'.join(path)}: checkpoint "
                  f"{flat[path].shape if path in flat else 'nothing'}, config {leaf.shape}"
                  for path, leaf in traverse_util.flatten_dict(expected_params).items()
                  if path not in flat or flat[path].shape != leaf.shape]
    if mismatched:
      raise ValueError(f"Checkpoint shapes disagree with config.json: {'; '.join(mismatched)}. Check that "
                       "config.json belongs to the same model as the weights.")
    return traverse_util.unflatten_dict(flat)
