"""Checkpoints with orbax: the latest few for resuming, and the best by a validation metric.

`<workdir>/checkpoints/<step>` holds the train state and a small JSON of loop state (early-stopping
counters). The input position needs no file of its own: the training stream is a pure function of the
seed and the global batch index, and the state's step is that index (`pipeline.train_iterator`), so a
restarted run continues exactly where the last complete checkpoint left off, with any number of
processes. Every process calls save and restore; orbax writes each array shard once (by the process that
owns it) and the metadata from process 0, and restores onto whatever mesh the abstract state names: a
checkpoint written by 2 processes restores on 1 process with 1 device, and a 1-process run resumes on 2
processes (tests/test_multiprocess.py). orbax writes each step to a temporary directory and renames it
only when complete, so a run killed mid-save (even by SIGKILL) leaves at worst a temporary directory,
which is ignored and cleaned up on restart.
`<workdir>/best/<step>` holds the train state and metrics of the best evaluation so far.
"""

import json
import logging
from pathlib import Path

import ml_collections
import orbax.checkpoint as ocp


class Checkpointer:
  def __init__(self, workdir: str | Path, config: ml_collections.ConfigDict):
    if config.max_to_keep < 1:
      raise ValueError(f"config.checkpoint.max_to_keep must be >= 1, got {config.max_to_keep}.")
    workdir = Path(workdir).absolute()
    self.best_metric = config.best_metric
    self.latest = ocp.CheckpointManager(
      workdir / "checkpoints",
      options=ocp.CheckpointManagerOptions(
        max_to_keep=config.max_to_keep,
        create=True,
        cleanup_tmp_directories=True,
        enable_async_checkpointing=config.async_save,
      ),
      item_handlers={"state": ocp.StandardCheckpointHandler(), "loop": ocp.JsonCheckpointHandler()},
    )
    self.best = ocp.CheckpointManager(
      workdir / "best",
      options=ocp.CheckpointManagerOptions(
        max_to_keep=1,
        create=True,
        cleanup_tmp_directories=True,
        best_fn=lambda metrics: metrics[self.best_metric],
        best_mode=config.best_mode,
        enable_async_checkpointing=config.async_save,
      ),
      item_handlers={"state": ocp.StandardCheckpointHandler(), "metrics": ocp.JsonCheckpointHandler()},
    )

  def save_latest(self, step: int, state, loop_state: dict) -> None:
    if step in self.latest.all_steps():
      return
    self.latest.save(
      step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), loop=ocp.args.JsonSave(loop_state))
    )

  def save_best(self, step: int, state, metrics: dict) -> None:
    # A run resumed from before this step replays it bit for bit; the saved copy already matches.
    if step in self.best.all_steps():
      return
    self.best.save(
      step,
      args=ocp.args.Composite(state=ocp.args.StandardSave(state), metrics=ocp.args.JsonSave(metrics)),
      metrics=metrics,
    )

  def restore_latest(self, abstract_state):
    """Returns (state, loop_state) from the newest complete checkpoint, or None for a fresh run."""
    step = self.latest.latest_step()
    if step is None:
      return None
    logging.info("Resuming from %s", self.latest.directory / str(step))
    restored = self.latest.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), loop=ocp.args.JsonRestore())
    )
    return restored["state"], restored["loop"]

  def restore(self, abstract_state, which: str = "best"):
    """Restores the train state of the best (or, with which='latest', the newest) checkpoint."""
    manager = self.best if which == "best" else self.latest
    step = manager.best_step() if which == "best" else manager.latest_step()
    if step is None:
      raise FileNotFoundError(
        f"No {which} checkpoint under {manager.directory}; train first "
        "(--mode=train) or point --workdir at a finished run."
      )
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    return restored["state"], step

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def restore_variables(workdir: str | Path, which: str = "best") -> tuple[dict, int]:
  """({"params", "batch_stats"} as numpy arrays, step) of a run's best (or latest) checkpoint: the model's
  variables only, for inference, bundles and encoders restored under a fusion head. No optimizer state is read
  (a partial restore of those two subtrees), no data, no mesh: the arrays are restored onto this process's first
  device whatever devices wrote them, then copied to the host (a cached device array would be donated, and
  deleted, by the first training step that reuses it)."""
  import jax

  if which not in ("best", "latest"):
    raise ValueError(f"which={which!r}: a run has a 'best' and a 'latest' checkpoint.")
  directory = Path(workdir).expanduser().absolute() / ("best" if which == "best" else "checkpoints")
  extra = "metrics" if which == "best" else "loop"
  if not directory.is_dir():
    raise FileNotFoundError(
      f"No {directory}: {workdir} is not a finished training workdir (train it first with "
      "python -m emojax.main --config ... --workdir ...)."
    )
  manager = ocp.CheckpointManager(
    directory, item_handlers={"state": ocp.PyTreeCheckpointHandler(), extra: ocp.JsonCheckpointHandler()}
  )
  try:
    step = manager.latest_step()  # best/ keeps one step
    if step is None:
      raise FileNotFoundError(
        f"No {which} checkpoint under {directory}: train the run first "
        f"(python -m emojax.main --config <its config> --workdir {workdir})."
      )
    metadata = manager.item_metadata(step)["state"]
    metadata = dict(getattr(metadata, "tree", metadata))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = {
      key: jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata[key])
      for key in ("params", "batch_stats")
      if key in metadata
    }
    restore = ocp.args.PyTreeRestore(
      item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True
    )
    state = manager.restore(step, args=ocp.args.Composite(state=restore))["state"]
  finally:
    manager.close()
  return jax.device_get({"params": state["params"], "batch_stats": state.get("batch_stats", {})}), int(step)


def load_run_config(workdir: str | Path) -> ml_collections.ConfigDict:
  """The config a run was trained with, from the `<workdir>/config.json` that training writes.

  JSON has no tuples, so every list comes back as the tuple the config file wrote (dropout rates per block,
  Swin depths, partition specs): the model rebuilt from it is the one that was trained.
  """
  path = Path(workdir) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(
      f"No config.json in {workdir}: expected a training workdir "
      "(python -m emojax.main --mode=train writes its config.json there)."
    )
  return ml_collections.ConfigDict(as_tuples(json.loads(path.read_text())))


def as_tuples(value):
  """JSON lists back to the tuples configs and Flax attributes hold (hashable, as the model was built with)."""
  if isinstance(value, dict):
    return {k: as_tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(as_tuples(v) for v in value)
  return value
