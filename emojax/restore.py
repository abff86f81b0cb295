"""The one way a finished run is restored for use, and the predictor every evaluation goes through.

    run = restore.restore_run(config, workdir, "best")   # model + variables; no optimizer, no training split
    report, outputs = run.evaluate()                      # the evaluation split, as training scored it
    outputs = run.predict(other_split, predict_step)      # any split read with the run's data settings

`restore_run` builds the model as training built it (`build_model`: the config and what the evaluation split tells
the model) and takes its parameters and batch-norm statistics from `checkpoint.restore_variables`, placed on the
config's mesh by its sharding rules. Eval, export, views, robustness, crossfit and ensembles use it; inference
bundles (`emojax.inference.bundle.load_run`) restore their variables through the same `checkpoint.restore_variables`.
`Predictor` runs a model over a split, on the device-resident path where the split fits there (`device_pipeline`),
else through host batches; training's evaluations use it too.
"""

import dataclasses
import functools
from pathlib import Path

import jax
import ml_collections

from emojax import checkpoint, metrics, prediction, sharding
from emojax.data import device_pipeline, load_split, pipeline
from emojax.data.base import Dataset
from emojax.models import get_model


def build_model(config: ml_collections.ConfigDict, data: Dataset):
  """The model of `config`, told what only its data knows (`metadata["model_kwargs"]`: end-to-end fusion's label
  map per encoder, an aligned set's feature statistics)."""
  return get_model(config.model, data.num_classes, **data.metadata.get("model_kwargs", {}))


@dataclasses.dataclass
class Predictor:
  """A model's outputs over a split, in dataset order, on a mesh."""

  config: ml_collections.ConfigDict
  model: object
  mesh: jax.sharding.Mesh
  data: Dataset  # the evaluation split
  predict_step: object
  on_device: bool = False  # the evaluation split may live on the devices (device_pipeline.resolve chose "device")

  @classmethod
  def create(cls, config, model, data: Dataset, mesh, on_device: bool) -> "Predictor":
    predict_step = prediction.make_predict_step(model, tta_flip=config.eval.get("tta_flip", False))
    return cls(config, model, mesh, data, predict_step, on_device)

  @functools.cached_property
  def device_data(self) -> device_pipeline.DeviceData | None:
    """The evaluation split on the devices, placed there on first use (modes that predict other splits never
    copy it), or None when it stays on the host."""
    return device_pipeline.DeviceData(self.data, self.mesh) if self.on_device else None

  @functools.cached_property
  def eval_step(self):
    return None if self.device_data is None else device_pipeline.make_eval_step(self.predict_step, self.device_data)

  def predict(self, variables, data: Dataset | None = None, predict_step=None) -> dict:
    """`predict_step`'s outputs (by default logits and friends) over `data` (default: the evaluation split)."""
    widths = pipeline.token_widths(self.config.data)
    batch_size = self.config.eval.batch_size
    if data is None and self.device_data is not None:
      step = self.eval_step if predict_step is None else device_pipeline.make_eval_step(predict_step, self.device_data)
      return device_pipeline.predict(step, variables, self.device_data, batch_size, widths)
    return prediction.predict(
      predict_step or self.predict_step, variables, self.data if data is None else data, self.mesh, batch_size, widths
    )

  def evaluate(self, variables) -> tuple[dict, dict]:
    """(the evaluation report, the outputs) on the evaluation split; `loss` is the plain cross-entropy."""
    outputs = self.predict(variables)
    report = metrics.evaluate_outputs(outputs, self.data)
    report["all"]["loss"] = metrics.plain_cross_entropy(outputs["logits"], self.data)
    return report, outputs


@dataclasses.dataclass
class RestoredRun:
  """A finished run's model and variables with a predictor over its evaluation split."""

  config: ml_collections.ConfigDict
  model: object
  variables: dict
  step: int
  predictor: Predictor

  @property
  def eval_data(self) -> Dataset:
    return self.predictor.data

  def predict(self, data: Dataset | None = None, predict_step=None) -> dict:
    return self.predictor.predict(self.variables, data, predict_step)

  def evaluate(self) -> tuple[dict, dict]:
    return self.predictor.evaluate(self.variables)


def restore_run(config: ml_collections.ConfigDict, workdir: str | Path, which: str = "best") -> RestoredRun:
  """`workdir`'s best (or latest) checkpoint under `config` (usually the run's own config.json): the model and its
  variables only, sharded over the config's mesh as training sharded them."""
  mesh = sharding.create_mesh(config.mesh)
  data = load_split(config.data, config.data.eval_split)
  model = build_model(config, data)
  variables, step = checkpoint.restore_variables(workdir, which)
  variables = jax.device_put(variables, sharding.tree_shardings(variables, mesh, config.sharding))
  on_device = device_pipeline.resolve(data, config.data, training=False) == "device"
  return RestoredRun(config, model, variables, step, Predictor.create(config, model, data, mesh, on_device))
