"""Entry point: python -m emojax.main --config configs/face_cnn.py:data=fer2013 --workdir runs/x [--mode=...]

Modes: train (the default), eval, views, export, robustness, crossfit, ensemble; see --help.
"""

import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

from emojax import sharding, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, optionally with :args.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, plots and reports.")
flags.DEFINE_enum(
  "mode",
  "train",
  ["train", "eval", "views", "export", "robustness", "crossfit", "ensemble"],
  "train (resumes if workdir has checkpoints), eval, views (PCA / t-SNE of embeddings) or export "
  "(per-example embeddings and logits of the train and eval splits, for fusion), or robustness "
  "(a fusion model with every subset of modalities missing at test time), or crossfit (fusion fitted "
  "on held-out folds of the validation exports, scored on the pooled out-of-fold tuples), or ensemble "
  "(the mean class probabilities of --workdir and --ensemble_workdirs, each run restored from its own "
  "config.json, scored like eval; report in <workdir>/ensemble_<checkpoint>_<split>/).",
)
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint the modes other than train restore.")
flags.DEFINE_list(
  "ensemble_workdirs",
  [],
  "--mode=ensemble: the other members' workdirs, comma-separated "
  "(--workdir is the first member); same dataset and evaluation split, any models or seeds.",
)
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(std_logging.Filter):
  """orbax logs every save step at INFO through absl; keep its warnings, drop the chatter."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  config = FLAGS.config
  sharding.configure_xla_cpu(config.get("xla_cpu_ynnpack", True))
  sharding.initialize_distributed(config)
  sharding.enable_compilation_cache(config.get("compilation_cache_dir", ""))
  if FLAGS.mode == "train":
    train.train_and_evaluate(config, FLAGS.workdir)
  elif FLAGS.mode == "eval":
    train.evaluate_checkpoint(config, FLAGS.workdir, FLAGS.checkpoint)
  elif FLAGS.mode == "views":
    from emojax import views

    views.write_feature_views(config, FLAGS.workdir, FLAGS.checkpoint)
  elif FLAGS.mode == "export":
    from emojax import export

    export.export_outputs(config, FLAGS.workdir, FLAGS.checkpoint)
  elif FLAGS.mode == "crossfit":
    from emojax import crossfit

    crossfit.crossfit(config, FLAGS.workdir)
  elif FLAGS.mode == "ensemble":
    from emojax import ensemble

    ensemble.evaluate_ensemble(config, [FLAGS.workdir, *FLAGS.ensemble_workdirs], which=FLAGS.checkpoint)
  else:
    from emojax import robustness

    robustness.evaluate_missing_modalities(config, FLAGS.workdir, FLAGS.checkpoint)


def run():
  """The `emojax` command: a subcommand (emojax/cli.py) if argv names one, else training and workdir modes."""
  import os
  import sys

  from emojax import cli

  code = cli.dispatch(sys.argv)
  if code is not None:
    sys.exit(code)
  try:
    app.run(main)
  except cli.USER_ERRORS as error:
    # Missing data, a wrong layout, a bad config value: one line saying what and where, not a traceback ending in
    # it. EMOJAX_TRACEBACK=1 shows the traceback.
    if os.environ.get("EMOJAX_TRACEBACK"):
      raise
    print(f"emojax: error: {error}\n(EMOJAX_TRACEBACK=1 shows where it was raised)", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  run()
