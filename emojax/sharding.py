"""Meshes and partition rules: scaling from one CPU to a pod changes the config, not the code.

The mesh has three named axes: `data` (batch split, parameters replicated), `fsdp` (batch split
and parameters sharded) and `model` (tensor parallelism: every kernel's output features split, the
batch replicated). Parameters get a `PartitionSpec` from the first rule in `config.sharding.rules`
whose regex matches their path ("params/Conv_0/kernel", also "opt_state/.../mu/Conv_0/kernel"), else
from the defaults (`default_spec`): with a `model` axis > 1, the last (output-feature) dimension of each
kernel over `model`; with strategy "fsdp", other parameters' largest divisible dimension over `fsdp`. XLA's SPMD
partitioner inserts the collectives either split needs.
"""

import os
import re

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")


def initialize_distributed(config: ml_collections.ConfigDict) -> None:
  """Multi-process (`config.distributed=True`): one process per host (or per local group of devices), each
  reading its own shard of the data. `coordinator_address`, `num_processes` and `process_id` come from the
  config; left empty (-1), JAX detects them itself on TPU VMs, under SLURM, MPI and on GKE."""
  if not config.get("distributed", False):
    return
  given = lambda value: None if value in ("", -1, None) else value
  jax.distributed.initialize(
    coordinator_address=given(config.get("coordinator_address", "")),
    num_processes=given(config.get("num_processes", -1)),
    process_id=given(config.get("process_id", -1)),
  )


def configure_xla_cpu(ynnpack: bool) -> None:
  """Before JAX starts: with `ynnpack` False, XLA:CPU computes convolutions itself (multi-threaded Eigen) instead
  of through its YNNPACK fusions, which jax 0.10.2 turns on by default and which ran DeepCNN's convolutions on
  one thread (the measured difference: benchmarks/BENCHMARKS.md). Only CPU runs are affected; an explicit flag in
  XLA_FLAGS wins."""
  flags = os.environ.get("XLA_FLAGS", "")
  if not ynnpack and "xla_cpu_experimental_ynn_fusion_type" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_experimental_ynn_fusion_type=".strip()


def enable_compilation_cache(directory: str) -> None:
  """JAX's persistent compilation cache (`config.compilation_cache_dir`, "" = off): a second start of the same
  program loads its compiled executables from disk instead of compiling them again."""
  if directory:
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def create_mesh(mesh_config: ml_collections.ConfigDict, devices=None) -> Mesh:
  """`mesh_config` maps axis name -> size; one size may be -1 (all remaining devices)."""
  devices = np.asarray(devices if devices is not None else jax.devices())
  sizes = {axis: int(mesh_config.get(axis, 1)) for axis in AXES}
  unknown = set(mesh_config.keys()) - set(AXES)
  if unknown:
    raise ValueError(f"config.mesh has unknown axes {sorted(unknown)}; use {AXES}.")
  free = [axis for axis, size in sizes.items() if size == -1]
  if len(free) > 1:
    raise ValueError(f"config.mesh: only one axis may be -1, got {free}.")
  fixed = int(np.prod([s for s in sizes.values() if s != -1]))
  if free:
    if devices.size % fixed:
      raise ValueError(f"config.mesh {dict(sizes)}: {devices.size} devices are not divisible by {fixed}.")
    sizes[free[0]] = devices.size // fixed
  if int(np.prod(list(sizes.values()))) != devices.size:
    raise ValueError(
      f"config.mesh {dict(sizes)} needs {int(np.prod(list(sizes.values())))} devices; "
      f"{devices.size} are present. Set one axis to -1 to use all of them."
    )
  return jax.make_mesh(
    tuple(sizes.values()), AXES, axis_types=(AxisType.Auto,) * len(AXES), devices=devices.ravel().tolist()
  )


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def default_spec(shape, mesh: Mesh, strategy: str, min_size: int) -> PartitionSpec:
  """One mesh axis per parameter: a kernel's output features over `model` (Megatron's column split) when the
  model axis is > 1 and divides them, else (strategy "fsdp") its largest dimension divisible by the fsdp axis
  over `fsdp` (big_vision's 'fsdp' strategy). Small parameters stay replicated.

  Not both on one kernel: with data, fsdp and model all > 1, DeepCNN with its convolution kernels split over
  fsdp and model at once and its batch-norm parameters over fsdp trains wrong numbers on XLA:CPU (jax 0.10.2:
  loss 2.02 instead of 1.83 after three steps; either split alone is exact), a partitioner fault we route
  around. A rule in `config.sharding.rules` can still ask for it.
  """
  if len(shape) == 0 or np.prod(shape, dtype=np.int64) < min_size:
    return PartitionSpec()
  if mesh.shape["model"] > 1 and len(shape) >= 2 and shape[-1] % mesh.shape["model"] == 0:
    return PartitionSpec(*[None] * (len(shape) - 1), "model")
  if strategy == "fsdp" and mesh.shape["fsdp"] > 1:
    for dim in np.argsort(shape)[::-1]:
      if shape[dim] % mesh.shape["fsdp"] == 0:
        spec = [None] * len(shape)
        spec[dim] = "fsdp"
        return PartitionSpec(*spec)
  return PartitionSpec()


def path_to_string(path) -> str:
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
  return "/".join(parts)


def tree_shardings(tree, mesh: Mesh, sharding_config: ml_collections.ConfigDict):
  """NamedShardings for every leaf of `tree` (arrays or ShapeDtypeStructs)."""
  rules = [(re.compile(pattern), PartitionSpec(*spec)) for pattern, spec in sharding_config.rules]
  strategy = sharding_config.strategy
  if strategy not in ("replicate", "fsdp"):
    raise ValueError(f"config.sharding.strategy={strategy!r}; expected 'replicate' or 'fsdp'.")

  def spec_for(path, leaf):
    name = path_to_string(path)
    for pattern, spec in rules:
      if pattern.search(name):
        return NamedSharding(mesh, spec)
    return NamedSharding(mesh, default_spec(np.shape(leaf), mesh, strategy, sharding_config.fsdp_min_size))

  return jax.tree_util.tree_map_with_path(spec_for, tree)


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
  """Per-process numpy batch -> global jax.Arrays split over the batch axes of the mesh."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)
