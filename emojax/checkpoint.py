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
            max_to_keep=config.max_to_keep, create=True, cleanup_tmp_directories=True,
            enable_async_checkpointing=config.async_save),
        item_handlers={"state": ocp.StandardCheckpointHandler(), "loop": ocp.JsonCheckpointHandler()})
    self.best = ocp.CheckpointManager(
        workdir / "best",
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, cleanup_tmp_directories=True,
            best_fn=lambda metrics: metrics[self.best_metric], best_mode=config.best_mode,
            enable_async_checkpointing=config.async_save),
        item_handlers={"state": ocp.StandardCheckpointHandler(), "metrics": ocp.JsonCheckpointHandler()})

  def save_latest(self, step: int, state, loop_state: dict) -> None:
    if step in self.latest.all_steps():
      return
    self.latest.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                    loop=ocp.args.JsonSave(loop_state)))

  def save_best(self, step: int, state, metrics: dict) -> None:
    # A run resumed from before this step replays it bit for bit; the saved copy already matches.
    if step in self.best.all_steps():
      return
    self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                  metrics=ocp.args.JsonSave(metrics)),
                   metrics=metrics)

  def restore_latest(self, abstract_state):
    """Returns (state, loop_state) from the newest complete checkpoint, or None for a fresh run."""
    step = self.latest.latest_step()
    if step is None:
      return None
    logging.info("Resuming from %s", self.latest.directory / str(step))
    restored = self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), loop=ocp.args.JsonRestore()))
    return restored["state"], restored["loop"]

  def restore(self, abstract_state, which: str = "best"):
    """Restores the train state of the best (or, with which='latest', the newest) checkpoint."""
    manager = self.best if which == "best" else self.latest
    step = manager.best_step() if which == "best" else manager.latest_step()
    if step is None:
      raise FileNotFoundError(f"No {which} checkpoint under {manager.directory}; train first "
                              "(--mode=train) or point --workdir at a finished run.")
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    return restored["state"], step

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()
