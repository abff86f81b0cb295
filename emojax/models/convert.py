"""Hugging Face checkpoint folders -> Flax params, without torch.

Weights come from `model.safetensors` or, for older hub checkpoints, `pytorch_model.bin`. The latter is a
pickle, and unpickling runs whatever it names, so it is read with an unpickler that only rebuilds tensors
and refuses every other global.
"""

import collections
import json
import pickle
import zipfile
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
from flax import traverse_util
from safetensors.numpy import load_file

from emojax.models.wav2vec2 import Wav2Vec2Config, Wav2Vec2Encoder

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
_TORCH_DTYPES = {"float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
                 "float16": np.float16, "half": np.float16, "bfloat16": ml_dtypes.bfloat16, "int64": np.int64,
                 "long": np.int64, "int32": np.int32, "int": np.int32, "int16": np.int16, "short": np.int16,
                 "int8": np.int8, "char": np.int8, "uint8": np.uint8, "byte": np.uint8, "bool": np.bool_}
# Heads of Wav2Vec2For* classes saved without the `wav2vec2.` prefix of their backbone.
_HEAD_PREFIXES = ("lm_head.", "quantizer.", "project_q.", "project_hid.", "classifier.", "projector.",
                  "masked_spec_embed")


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
  fix = ("Download the model on a machine with hub access (e.g. `hf download facebook/wav2vec2-base "
         f"--local-dir {folder}`) and copy the whole folder here.")
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


def _position_conv_kernel(backbone: dict, missing: list) -> np.ndarray | None:
  """The positional conv's effective weight; HF stores it weight-normed with dim=2 (one norm per kernel tap)."""
  prefix = "encoder.pos_conv_embed.conv."
  for magnitude, direction in (("weight_g", "weight_v"),
                               ("parametrizations.weight.original0", "parametrizations.weight.original1")):
    if prefix + magnitude in backbone and prefix + direction in backbone:
      g, v = (np.asarray(backbone[prefix + name], np.float32) for name in (magnitude, direction))
      return g * v / np.sqrt(np.square(v).sum(axis=(0, 1), keepdims=True))
  if prefix + "weight" in backbone:
    return np.asarray(backbone[prefix + "weight"], np.float32)
  missing.append(prefix + "weight_g/weight_v (or parametrizations.weight.original0/original1)")
  return None


def wav2vec2_params_from_hf(state_dict: dict, config: Wav2Vec2Config) -> dict:
  """The Flax `params` of `Wav2Vec2Encoder(config)` from a HF state dict (Wav2Vec2Model or any Wav2Vec2For*)."""
  prefixed = any(name.startswith("wav2vec2.") for name in state_dict)
  backbone = {name.removeprefix("wav2vec2."): value for name, value in state_dict.items()
              if (name.startswith("wav2vec2.") or not prefixed) and not name.startswith(_HEAD_PREFIXES)}
  dense = lambda array: array.T  # torch Linear [out, in] -> Dense [in, out]
  conv = lambda array: array.transpose(2, 1, 0)  # torch Conv1d [out, in/groups, k] -> Conv [k, in/groups, out]
  plan = []  # (flax path, torch name, layout)

  def add(flax_path, torch_module, weight_layout, weight_leaf="kernel", bias=True):
    plan.append((flax_path + (weight_leaf,), torch_module + ".weight", weight_layout))
    if bias:
      plan.append((flax_path + ("bias",), torch_module + ".bias", None))

  norm = lambda flax_path, torch_module: add(flax_path, torch_module, None, weight_leaf="scale")
  for index in range(len(config.conv_dim)):
    torch_layer = f"feature_extractor.conv_layers.{index}"
    add(("feature_encoder", f"conv_{index}"), f"{torch_layer}.conv", conv, bias=config.conv_bias)
    if config.feat_extract_norm == "layer" or index == 0:
      norm(("feature_encoder", f"norm_{index}"), f"{torch_layer}.layer_norm")
  norm(("feature_layer_norm",), "feature_projection.layer_norm")
  add(("feature_projection",), "feature_projection.projection", dense)
  plan.append((("position_conv", "bias"), "encoder.pos_conv_embed.conv.bias", None))
  norm(("encoder_layer_norm",), "encoder.layer_norm")
  for index in range(config.num_hidden_layers):
    layer, torch_layer = f"layers_{index}", f"encoder.layers.{index}"
    for flax_name, torch_name in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"), ("output", "out_proj")):
      add((layer, "attention", flax_name), f"{torch_layer}.attention.{torch_name}", dense)
    norm((layer, "attention_layer_norm"), f"{torch_layer}.layer_norm")
    add((layer, "feed_forward_in"), f"{torch_layer}.feed_forward.intermediate_dense", dense)
    add((layer, "feed_forward_out"), f"{torch_layer}.feed_forward.output_dense", dense)
    norm((layer, "feed_forward_layer_norm"), f"{torch_layer}.final_layer_norm")

  missing = [torch_name for _, torch_name, _ in plan if torch_name not in backbone]
  position_kernel = _position_conv_kernel(backbone, missing)
  if missing:
    raise ValueError(f"The checkpoint lacks {len(missing)} parameter(s) this config needs: {', '.join(missing)}. "
                     f"Check that config.json belongs to the same model as the weights.")
  flat = {path: (layout or (lambda array: array))(np.asarray(backbone[torch_name], np.float32))
          for path, torch_name, layout in plan}
  flat[("position_conv", "kernel")] = conv(position_kernel)

  audio = jax.ShapeDtypeStruct((1, config.receptive_field), np.float32)
  expected = jax.eval_shape(Wav2Vec2Encoder(config).init, jax.random.key(0), audio)["params"]
  mismatched = [f"{'/'.join(path)}: checkpoint {flat[path].shape if path in flat else 'nothing'}, "
                f"config {leaf.shape}" for path, leaf in traverse_util.flatten_dict(expected).items()
                if path not in flat or flat[path].shape != leaf.shape]
  if mismatched:
    raise ValueError(f"Checkpoint shapes disagree with config.json: {'; '.join(mismatched)}.")
  return traverse_util.unflatten_dict(flat)


def load_wav2vec2(folder) -> tuple[Wav2Vec2Config, dict]:
  """(config, params) for `Wav2Vec2Encoder` from a Hugging Face wav2vec 2.0 folder."""
  state_dict = load_hf_state_dict(folder)
  config = Wav2Vec2Config.from_hf_json(Path(folder) / "config.json")
  return config, wav2vec2_params_from_hf(state_dict, config)
