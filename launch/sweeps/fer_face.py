"""FER2013: every face model and switch of the published design under one budget (half width, 18 epochs, batch
256, learning rate 2e-3, seed 0), so the table compares like with like.

  python launch/sweep.py launch/sweeps/fer_face.py --root runs/fer_face                # one after another
  for i in $(seq 0 8); do python launch/sweep.py launch/sweeps/fer_face.py --root runs/fer_face --shard=$i/9 & done
  python -m emojax.results runs/fer_face/* --csv runs/fer_face/results.csv

The landmark runs read the 68-point cache (config.data.landmark_points=ibug68) made by
`emojax.data.extract_landmarks` under $EMOJAX_CACHE_DIR/landmarks; `LANDMARK_POINTS=facemesh` uses all 468.
"""

import os

from emojax.config_utils import cache_dir

BUDGET = {"config.train.num_epochs": 18, "config.train.batch_size": 256, "config.optimizer.learning_rate": 2e-3}
POINTS = os.environ.get("LANDMARK_POINTS", "ibug68")
LANDMARKS = {"config.data.landmark_cache": cache_dir("landmarks"), "config.data.landmark_points": POINTS}
RESIDUAL = "configs/face_cnn.py:model=residual_attention"


def get_sweep():
  half = {"config.model.width": 0.5}
  runs = [
    {"config": "configs/face_cnn.py:model=deep_cnn", "name": "deep_cnn", **half},
    {"config": RESIDUAL, "name": "resattn", **half},
    {"config": RESIDUAL, "name": "resattn_swin", **half, "config.model.swin": True},
    {"config": RESIDUAL, "name": "resattn_erasing", **half, "config.data.augment.random_erasing": 0.5},
    {"config": "configs/face_cnn.py:model=cnn_bilstm", "name": "cnn_bilstm", **half},
    {"config": "configs/face_cnn.py:model=landmark_gat", "name": f"landmark_gat_{POINTS}", **LANDMARKS},
    {
      "config": RESIDUAL,
      "name": f"resattn_landmarks_{POINTS}",
      **half,
      **LANDMARKS,
      "config.model.landmark_graph": True,
    },
    {
      "config": RESIDUAL,
      "name": f"resattn_swin_landmarks_{POINTS}",
      **half,
      **LANDMARKS,
      "config.model.swin": True,
      "config.model.landmark_graph": True,
    },
    {
      "config": RESIDUAL,
      "name": f"resattn_swin_landmarks_{POINTS}_adaptive",
      **half,
      **LANDMARKS,
      "config.model.swin": True,
      "config.model.landmark_graph": True,
      "config.model.adaptive_weighting": True,
    },
  ]
  return [{**run, **BUDGET} for run in runs]
