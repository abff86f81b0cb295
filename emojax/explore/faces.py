"""Faces: FER2013 (both layouts), face clips / CK+, the synthetic faces.

Class balance per split; pixel intensities, the mean and standard-deviation face and a sample grid per class;
brightness, contrast and sharpness; blank images; exact duplicates (the data layer's one pixel hash,
`quality.row_keys`, which FER2013's `without_train_duplicates` subset and `config.data.drop_duplicates` use too)
within and across splits and near duplicates (a 64-bit DCT perceptual hash within a small Hamming distance),
each group with its labels; and the share of images in which the clip reader's face detector finds a face.
A clip is represented by its last real frame (a posed sequence's apex).
"""

import numpy as np
from scipy import fft, sparse
from scipy.sparse import csgraph

from emojax.data import clips as clips_lib
from emojax.data import quality
from emojax.data.base import Dataset
from emojax.explore import figures
from emojax.explore.report import Report

NEAR_CONSTANT_STD = 2.0  # gray levels: an image this flat carries no face (FER2013's blanks are all zeros)
NEAR_DUPLICATE_BITS = 4  # perceptual-hash Hamming distance (of 64 bits) that still counts as "the same picture"
DETECTOR_PAD = 8  # FER2013 crops tightly; Haar needs a margin around the face
SAMPLES_PER_CLASS = 8


def frames_of(dataset: Dataset) -> np.ndarray:
  """uint8 [N, H, W]: images as they are, clips by their last real frame."""
  if "image" in dataset.arrays:
    return np.asarray(dataset.arrays["image"])[..., 0]
  clips, mask = np.asarray(dataset.arrays["clip"]), np.asarray(dataset.arrays["clip_mask"])
  last = np.maximum(mask.sum(1).astype(int) - 1, 0)
  return clips[np.arange(len(clips)), last, ..., 0]


def image_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
  """Per image: brightness (mean gray level), contrast (its standard deviation), sharpness (Laplacian variance)."""
  import cv2

  pixels = images.reshape(len(images), -1).astype(np.float32)
  sharpness = np.array([cv2.Laplacian(image, cv2.CV_64F).var() for image in images])
  return {"brightness": pixels.mean(1), "contrast": pixels.std(1), "sharpness": sharpness}


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
  """pHash: 32x32 -> 2-D DCT -> the 8x8 lowest frequencies above their median (DC excluded) -> uint64 [N]."""
  import cv2

  small = np.stack([cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA) for image in images]).astype(np.float32)
  low = fft.dctn(small, type=2, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(images), 64)
  bits = low > np.median(low[:, 1:], axis=1, keepdims=True)
  return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def close_pairs(hashes: np.ndarray, max_bits: int, chunk: int = 2048) -> np.ndarray:
  """[P, 2] index pairs i < j whose hashes differ in at most `max_bits` bits (brute force, chunked)."""
  pairs = []
  for start in range(0, len(hashes), chunk):
    block = hashes[start : start + chunk]
    distance = np.bitwise_count(block[:, None] ^ hashes[None, start:])
    i, j = np.nonzero(distance <= max_bits)  # row start + i against row start + j
    keep = j > i  # each pair once, no image with itself
    pairs.append(np.stack([i[keep] + start, j[keep] + start], 1))
  return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def groups_of(pairs: np.ndarray, count: int) -> list[np.ndarray]:
  """Connected components (size >= 2) of the graph the pairs draw over `count` nodes."""
  if len(pairs) == 0:
    return []
  graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(count, count))
  _, component = csgraph.connected_components(graph, directed=False)
  order = np.argsort(component, kind="stable")
  bounds = np.flatnonzero(np.diff(component[order])) + 1
  return [g for g in np.split(order, bounds) if len(g) > 1]


def detector_finds_face(image: np.ndarray, pad: int) -> bool:
  """The clip reader's Haar detector and settings (`clips._crop_box(..., "haar")`), on the image with a
  replicated border of `pad` pixels."""
  import cv2

  if pad:
    image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
  return bool(clips_lib._crop_box(image, "haar")[1])


def analyze(report: Report, splits: dict[str, Dataset], sample: int, seed: int = 0) -> None:
  """Adds the face sections to `report` for `splits` (name -> Dataset with `image` or `clip` rows)."""
  progress = report.progress
  names = next(iter(splits.values())).class_names
  split_names = list(splits)
  with progress.step("image statistics"):
    frames = {s: frames_of(d) for s, d in splits.items()}
    labels = {s: np.asarray(d.arrays["label"]) for s, d in splits.items()}
    ids = {s: np.asarray(d.arrays.get("id", np.arange(len(d)))).astype(str) for s, d in splits.items()}
    stats = {s: image_statistics(frames[s]) for s in splits}
  _overview(report, splits, frames, labels, names)
  _intensities(report, frames, labels, names, stats, seed)
  _blank(report, frames, labels, ids, names, stats)
  with progress.step("exact duplicates"):
    _exact_duplicates(report, splits, frames, labels, ids, names)
  with progress.step("near duplicates (perceptual hash)"):
    _near_duplicates(report, split_names, frames, labels, ids, names, stats)
  with progress.step("face detector"):
    _detector(report, frames, labels, names, sample, seed)


def _overview(report, splits, frames, labels, names):
  report.section("Class balance")
  counts = {s: np.bincount(labels[s], minlength=len(names)) for s in splits}
  shape = "x".join(str(d) for d in next(iter(frames.values())).shape[1:])
  rows = [
    [name] + [int(counts[s][i]) for s in splits] + [f"{100 * counts[s][i] / counts[s].sum():.1f}%" for s in splits]
    for i, name in enumerate(names)
  ]
  rows.append(["total"] + [int(counts[s].sum()) for s in splits] + ["100%"] * len(splits))
  report.table(
    ["class"] + [f"{s}" for s in splits] + [f"{s} share" for s in splits],
    rows,
    f"Images per class and split ({shape} grayscale).",
  )
  report.figure(figures.grouped_bars(counts, list(names), "Images per class"), "class_counts", "Images per class.")
  skipped = {s: d.skipped for s, d in splits.items() if d.skipped}
  train = counts.get("train", next(iter(counts.values())))
  present = train[train > 0]
  ratio = float(present.max() / present.min()) if present.size else float("nan")
  largest, smallest = int(np.argmax(train)), int(np.argmin(np.where(train > 0, train, np.inf)))
  report.text(
    f"The largest class has {ratio:.1f}x as many images as the smallest ({names[largest]} "
    f"{int(train[largest]):,} vs {names[smallest]} {int(train[smallest]):,} in "
    f"{'train' if 'train' in counts else next(iter(counts))}). "
    f"Unreadable files the reader skipped: {sum(len(v) for v in skipped.values())}."
  )
  if skipped:
    report.table(
      ["split", "file and reason"],
      [[s, line] for s, lines in skipped.items() for line in lines],
      "Skipped files.",
      max_rows=30,
    )
  report.summary["class_counts"] = {s: dict(zip(names, counts[s].tolist())) for s in splits}
  report.summary["imbalance_ratio"] = ratio
  report.summary["skipped"] = skipped
  no_face = {s: d.metadata["clips_without_face"] for s, d in splits.items() if "clips_without_face" in d.metadata}
  if no_face:
    report.summary["clips_without_face"] = no_face
    report.text(
      "Clips in which the reader's face detector found no face (cropped to the centre instead): "
      + ", ".join(f"{s} {n}" for s, n in no_face.items())
      + "."
    )
    lengths = {s: np.asarray(d.arrays["clip_mask"]).sum(1) for s, d in splits.items()}
    report.summary["clip_real_frames"] = {s: _quantiles(v) for s, v in lengths.items()}


def _intensities(report, frames, labels, names, stats, seed):
  report.section("Pixel intensities, mean and standard-deviation faces")
  reference = "train" if "train" in frames else next(iter(frames))
  images, y = frames[reference], labels[reference]
  fig, ax = figures.plt.subplots(figsize=(6, 3.2))
  rows, per_class = [], {}
  for index, name in enumerate(names):
    members = images[y == index]
    if not len(members):
      continue
    histogram = np.bincount(members.ravel(), minlength=256) / members.size
    ax.plot(np.arange(256), histogram, label=name, linewidth=1)
    mean_face, std_face = members.mean(0), members.std(0)
    per_class[name] = (mean_face, std_face)
    s = {k: v[y == index] for k, v in stats[reference].items()}
    rows.append(
      [
        name,
        len(members),
        float(members.mean()),
        float(members.std()),
        float((std_face**2).mean()),
        float(np.median(s["brightness"])),
        float(np.median(s["contrast"])),
        float(np.median(s["sharpness"])),
      ]
    )
  ax.set_xlabel("gray level")
  ax.set_ylabel("share of pixels")
  ax.set_title(f"Pixel intensity per class ({reference})", fontsize=10)
  ax.legend(fontsize=7)
  fig.tight_layout()
  report.table(
    [
      "class",
      "images",
      "pixel mean",
      "pixel std",
      "expression variance",
      "median brightness",
      "median contrast",
      "median sharpness",
    ],
    rows,
    f"Per class ({reference}): pixel mean and standard deviation over all pixels; expression variance = "
    "the mean over pixel positions of the variance across the class's images (how much its faces "
    "differ); brightness = an image's mean gray level, contrast = its standard deviation, sharpness = "
    "the variance of its Laplacian.",
  )
  report.summary["per_class"] = {
    r[0]: dict(
      zip(
        [
          "images",
          "pixel_mean",
          "pixel_std",
          "expression_variance",
          "median_brightness",
          "median_contrast",
          "median_sharpness",
        ],
        r[1:],
      )
    )
    for r in rows
  }
  report.figure(fig, "pixel_histograms", f"Pixel-intensity histogram per class ({reference}).")
  class_order = list(per_class)
  std_max = max(float(s.max()) for _, s in per_class.values())
  fig = figures.image_grid([[per_class[c][0] for c in class_order]], ["mean"], class_order, scale=1.2)
  report.figure(fig, "mean_faces", f"Mean face per class ({reference}).")
  fig = figures.image_grid(
    [[per_class[c][1] for c in class_order]], ["std"], class_order, scale=1.2, cmap="magma", vmax=std_max
  )
  report.figure(
    fig, "std_faces", f"Standard-deviation face per class ({reference}): bright = where the class's faces differ most."
  )
  rng = np.random.default_rng(seed)
  grid, row_names = [], []
  for index, name in enumerate(names):
    members = np.flatnonzero(y == index)
    if members.size:
      grid.append(
        [images[i] for i in np.sort(rng.choice(members, min(SAMPLES_PER_CLASS, members.size), replace=False))]
      )
      row_names.append(name)
  report.figure(
    figures.mosaic(grid, row_names),
    "samples",
    f"{SAMPLES_PER_CLASS} random {reference} images per class (seed {seed}).",
  )
  report.section("Brightness, contrast and sharpness")
  panels = {metric: {s: stats[s][metric] for s in stats} for metric in ("brightness", "contrast", "sharpness")}
  report.figure(
    figures.histograms(panels, log_y=("sharpness",)),
    "quality_distributions",
    "Brightness (mean gray level), contrast (standard deviation) and sharpness (Laplacian variance) per split.",
  )
  report.summary["image_statistics"] = {s: {m: _quantiles(v) for m, v in stats[s].items()} for s in stats}
  report.table(
    ["split", "metric", "p1", "p5", "median", "p95", "p99"],
    [
      [s, m] + [q[k] for k in ("p1", "p5", "p50", "p95", "p99")]
      for s, per in report.summary["image_statistics"].items()
      for m, q in per.items()
    ],
    "Quantiles per split.",
  )


def _blank(report, frames, labels, ids, names, stats):
  report.section("Blank and near-constant images")
  rows, examples = [], []
  for split in frames:
    flat = np.flatnonzero(stats[split]["contrast"] < NEAR_CONSTANT_STD)
    for i in flat:
      rows.append(
        [
          split,
          ids[split][i],
          names[labels[split][i]],
          float(stats[split]["brightness"][i]),
          float(stats[split]["contrast"][i]),
        ]
      )
      if len(examples) < 16:
        examples.append(frames[split][i])
  counts = {s: int((stats[s]["contrast"] < NEAR_CONSTANT_STD).sum()) for s in frames}
  report.text(
    f"Images whose gray levels vary by less than {NEAR_CONSTANT_STD} (standard deviation) carry no "
    "face: " + ", ".join(f"{s} {n}" for s, n in counts.items()) + "."
  )
  if rows:
    report.table(["split", "id", "label", "brightness", "contrast"], rows, "Near-constant images.", max_rows=40)
    report.figure(figures.image_grid([examples], scale=0.8), "blank_images", "Near-constant images (first 16).")
  report.summary["near_constant"] = {
    "threshold_std": NEAR_CONSTANT_STD,
    "counts": counts,
    "images": [r[:3] for r in rows],
  }


def _exact_duplicates(report, splits, frames, labels, ids, names):
  report.section("Exact duplicates")
  keys = {s: quality.row_keys(d) for s, d in splits.items()}
  members: dict = {}
  for split in splits:
    for row, key in enumerate(keys[split]):
      members.setdefault(key, []).append((split, row))
  groups = [m for m in members.values() if len(m) > 1]
  summary = {"groups": [], "within": {}, "across": {}}
  for group in groups:
    group_splits = sorted({s for s, _ in group})
    group_labels = sorted({int(labels[s][r]) for s, r in group})
    summary["groups"].append(
      {
        "members": [[s, ids[s][r], names[labels[s][r]]] for s, r in group],
        "splits": group_splits,
        "conflicting": len(group_labels) > 1,
      }
    )
  for split in splits:
    within = [g for g in summary["groups"] if g["splits"] == [split]]
    summary["within"][split] = {
      "groups": len(within),
      "images": sum(len(g["members"]) for g in within),
      "redundant_copies": sum(len(g["members"]) - 1 for g in within),
      "conflicting_groups": sum(g["conflicting"] for g in within),
    }
  rows = [
    [s, v["groups"], v["images"], v["redundant_copies"], v["conflicting_groups"]] for s, v in summary["within"].items()
  ]
  cross = [g for g in summary["groups"] if len(g["splits"]) > 1]
  rows.append(
    ["across splits", len(cross), sum(len(g["members"]) for g in cross), "", sum(g["conflicting"] for g in cross)]
  )
  report.table(
    ["where", "groups", "images in them", "copies beyond the first", "groups with conflicting labels"],
    rows,
    "Pixel-identical images (the data layer's pixel hash, as `config.data.drop_duplicates` and "
    "FER2013's `without_train_duplicates` subset use it).",
  )
  if "train" in splits:
    for split in [s for s in splits if s != "train"]:
      copied, other_label = quality.copies_of(splits[split], splits["train"])
      entry = {
        "images_with_train_copy": int(copied.sum()),
        "with_another_label": int(other_label.sum()),
        "share": float(copied.mean()),
      }
      subset = splits[split].eval_subsets.get("without_train_duplicates")
      if subset is not None:
        entry["matches_without_train_duplicates_subset"] = bool(np.array_equal(~subset, copied))
      summary["across"][split] = entry
      report.text(
        f"{int(copied.sum()):,} {split} images ({100 * copied.mean():.1f}%) are pixel copies of a train "
        f"image; {int(other_label.sum()):,} of them carry another label than (one of) their train copies. "
        f"`--config.data.drop_duplicates=from_train` drops their train twins, `from_validation` drops "
        f"them from {split}"
        + (" (what remains is the evaluator's `without_train_duplicates` subset)." if subset is not None else ".")
      )
  conflicting = [g for g in summary["groups"] if g["conflicting"]]
  ordered = sorted(conflicting, key=lambda g: (-len(g["splits"]), g["members"][0][1])) + [
    g for g in summary["groups"] if not g["conflicting"]
  ]
  report.table(
    ["splits", "members (split: id = label)", "conflicting"],
    [
      [
        " + ".join(g["splits"]),
        "; ".join(f"{s}: {i} = {label}" for s, i, label in g["members"]),
        "yes" if g["conflicting"] else "",
      ]
      for g in ordered
    ],
    "Duplicate groups, conflicting ones first.",
    max_rows=30,
  )
  examples = [g for g in ordered if g["conflicting"]][:10]
  if examples:
    index = {(s, i): r for s in splits for r, i in enumerate(ids[s])}
    grid = [[frames[s][index[(s, i)]] for s, i, _ in g["members"][:2]] for g in examples]
    captions = [[f"{s}: {label}" for s, _, label in g["members"][:2]] for g in examples]
    report.figure(
      figures.image_grid(_transpose(grid), scale=1.0, captions=_transpose(captions)),
      "duplicate_conflicts",
      "Pixel-identical images with different labels (each column one group).",
    )
  report.summary["exact_duplicates"] = summary


def _near_duplicates(report, split_names, frames, labels, ids, names, stats):
  report.section("Near duplicates (perceptual hash)")
  all_frames = np.concatenate([frames[s] for s in split_names])
  split_of = np.concatenate([np.full(len(frames[s]), i) for i, s in enumerate(split_names)])
  row_of = np.concatenate([np.arange(len(frames[s])) for s in split_names])
  all_labels = np.concatenate([labels[s] for s in split_names])
  flat = np.concatenate([stats[s]["contrast"] < NEAR_CONSTANT_STD for s in split_names])
  hashes = perceptual_hashes(all_frames)
  pairs = close_pairs(hashes, NEAR_DUPLICATE_BITS)
  pixel_equal = np.array([np.array_equal(all_frames[i], all_frames[j]) for i, j in pairs], bool).reshape(-1)
  keep = ~pixel_equal & ~flat[pairs[:, 0]] & ~flat[pairs[:, 1]] if len(pairs) else np.zeros(0, bool)
  pairs = pairs[keep]
  distance = np.bitwise_count(hashes[pairs[:, 0]] ^ hashes[pairs[:, 1]]).astype(int) if len(pairs) else np.zeros(0, int)
  conflicting = all_labels[pairs[:, 0]] != all_labels[pairs[:, 1]]
  kinds = {}
  for a, b, c in zip(split_of[pairs[:, 0]], split_of[pairs[:, 1]], conflicting):
    kind = " - ".join(sorted({split_names[a], split_names[b]})) if a != b else split_names[a]
    entry = kinds.setdefault(kind, [0, 0])
    entry[0] += 1
    entry[1] += int(c)
  groups = groups_of(pairs, len(all_frames))
  if len(pairs) > len(all_frames):
    report.text(
      f"Caution: {len(pairs):,} near pairs among {len(all_frames):,} images is more than one per image: the "
      "hash does not tell these images apart (faces drawn on one template, say), so the groups below are "
      "'alike', not copies."
    )
  report.text(
    f"A 64-bit DCT perceptual hash (pHash) of each image; two images that are not pixel-identical but "
    f"whose hashes differ in at most {NEAR_DUPLICATE_BITS} bits count as near duplicates (re-encoded, "
    "slightly shifted, brightened or cropped copies). Near-constant images are left out."
  )
  report.table(
    ["between", "pairs", "pairs with different labels"],
    [[k, v[0], v[1]] for k, v in sorted(kinds.items())] or [["(none)", 0, 0]],
    f"Near-duplicate pairs (Hamming distance 1-{NEAR_DUPLICATE_BITS} of 64, not pixel-identical).",
  )
  summary = {
    "max_bits": NEAR_DUPLICATE_BITS,
    "pairs": {k: {"pairs": v[0], "conflicting": v[1]} for k, v in kinds.items()},
    "groups": [],
  }
  if "train" in split_names:
    train = split_names.index("train")
    for other, name in enumerate(split_names):
      if other == train:
        continue
      cross = pairs[(split_of[pairs[:, 0]] != split_of[pairs[:, 1]])]
      cross = cross[(split_of[cross] == other).any(1) & (split_of[cross] == train).any(1)]
      rows_other = np.unique(np.where(split_of[cross[:, 0]] == other, cross[:, 0], cross[:, 1]))
      summary[f"{name}_images_near_a_train_image"] = int(len(rows_other))
      report.text(
        f"{len(rows_other):,} {name} images have a near (not pixel-identical) copy in train, beyond the "
        "exact copies above."
      )
  for group in sorted(groups, key=len, reverse=True):
    summary["groups"].append(
      {
        "members": [
          [split_names[split_of[i]], ids[split_names[split_of[i]]][row_of[i]], names[all_labels[i]]] for i in group
        ],
        "conflicting": len(set(all_labels[group].tolist())) > 1,
      }
    )
  report.table(
    ["size", "members (split: id = label)", "conflicting"],
    [
      [
        len(g["members"]),
        "; ".join(f"{s}: {i} = {label}" for s, i, label in g["members"][:6])
        + (" ..." if len(g["members"]) > 6 else ""),
        "yes" if g["conflicting"] else "",
      ]
      for g in summary["groups"]
    ],
    "Near-duplicate groups (connected pairs), largest first.",
    max_rows=20,
  )
  if len(pairs):
    group_of = np.zeros(len(all_frames), int)
    for number, group in enumerate(groups):
      group_of[group] = number
    order = np.lexsort((distance, ~conflicting, split_of[pairs[:, 0]] == split_of[pairs[:, 1]]))
    _, first = np.unique(group_of[pairs[order, 0]], return_index=True)  # one pair per group
    order = order[np.sort(first)][:10]
    grid = [[all_frames[i], all_frames[j]] for i, j in pairs[order]]
    captions = [
      [
        f"{split_names[split_of[i]]}: {names[all_labels[i]]}",
        f"{split_names[split_of[j]]}: {names[all_labels[j]]} (d={d})",
      ]
      for (i, j), d in zip(pairs[order], distance[order])
    ]
    report.figure(
      figures.image_grid(_transpose(grid), scale=1.0, captions=_transpose(captions)),
      "near_duplicates",
      "Near-duplicate pairs (each column one pair; d = Hamming distance), "
      "across splits and with different labels first.",
    )
  summary["distance_histogram"] = np.bincount(distance, minlength=NEAR_DUPLICATE_BITS + 1).tolist()
  summary["groups_total"] = len(groups)
  summary["groups_conflicting"] = sum(g["conflicting"] for g in summary["groups"])
  report.summary["near_duplicates"] = summary


def _detector(report, frames, labels, names, sample, seed):
  report.section("Face detector")
  rng = np.random.default_rng(seed)
  rows, summary = [], {}
  for split, images in frames.items():
    count = min(sample, len(images))
    picked = np.sort(rng.choice(len(images), count, replace=False))
    if count < len(images):
      report.sampled(f"face detector on {count:,} of {len(images):,} {split} images")
    found_raw = np.array([detector_finds_face(images[i], 0) for i in picked])
    found_pad = np.array([detector_finds_face(images[i], DETECTOR_PAD) for i in picked])
    per_class = {
      names[c]: float(found_pad[labels[split][picked] == c].mean())
      for c in range(len(names))
      if (labels[split][picked] == c).any()
    }
    summary[split] = {
      "images": count,
      "found_as_is": float(found_raw.mean()),
      "found_with_border": float(found_pad.mean()),
      "found_with_border_per_class": per_class,
    }
    rows.append(
      [split, count, f"{100 * found_raw.mean():.1f}%", f"{100 * found_pad.mean():.1f}%"]
      + [f"{100 * per_class.get(n, float('nan')):.0f}%" for n in names]
    )
  report.table(
    ["split", "images", "face found (as is)", f"(with {DETECTOR_PAD}px border)"] + list(names),
    rows,
    "Share of images in which OpenCV's frontal-face Haar detector, with the clip reader's settings "
    '(`face_crop="haar"`), finds a face: on the image as it is and with a replicated border (tightly '
    "cropped faces leave the detector no margin); per class with the border.",
  )
  report.summary["face_detector"] = summary


def _transpose(rows):
  width = max(len(r) for r in rows)
  return [[r[c] if c < len(r) else None for r in rows] for c in range(width)]


def _quantiles(values) -> dict:
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  if not values.size:
    return {}
  q = np.percentile(values, [1, 5, 50, 95, 99])
  return {
    "mean": float(values.mean()),
    "std": float(values.std()),
    "p1": q[0],
    "p5": q[1],
    "p50": q[2],
    "p95": q[3],
    "p99": q[4],
    "min": float(values.min()),
    "max": float(values.max()),
  }
