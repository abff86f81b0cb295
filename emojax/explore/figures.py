"""Figure helpers shared by the modality analyses: each returns a matplotlib figure for `Report.figure`.

Small on purpose (a few inches, the report saves them at 80 dpi): a report holds a few dozen and embeds them all.
"""

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plt", "grouped_bars", "histograms", "heatmap", "image_grid", "mosaic", "boxes", "scatter_panels", "barh"]


def grouped_bars(counts: dict[str, np.ndarray], names, title: str, ylabel: str = "count", log: bool = False):
  """Bars per name, one colour per group (split), each labelled with its count."""
  groups = list(counts)
  fig, ax = plt.subplots(figsize=(max(5.0, 0.75 * len(names) * max(1, len(groups)) ** 0.5 + 2), 3.4))
  width = 0.8 / max(1, len(groups))
  x = np.arange(len(names))
  for i, group in enumerate(groups):
    bars = ax.bar(x + (i - (len(groups) - 1) / 2) * width, counts[group], width, label=group)
    if len(names) * len(groups) <= 32:
      ax.bar_label(bars, labels=[f"{int(v):,}" for v in counts[group]], fontsize=7, rotation=90, padding=2)
  ax.set_xticks(x, names, rotation=45 if len(names) > 8 else 0, ha="right" if len(names) > 8 else "center")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  if log:
    ax.set_yscale("log")
  ax.margins(y=0.2)
  if len(groups) > 1:
    ax.legend(fontsize=8)
  fig.tight_layout()
  return fig


def barh(values: np.ndarray, names, title: str, xlabel: str = "count"):
  order = np.argsort(values)
  fig, ax = plt.subplots(figsize=(5.5, max(2.5, 0.22 * len(names) + 0.8)))
  ax.barh(np.arange(len(names)), np.asarray(values)[order])
  ax.set_yticks(np.arange(len(names)), [names[i] for i in order], fontsize=8)
  ax.set_xlabel(xlabel)
  ax.set_title(title)
  fig.tight_layout()
  return fig


def histograms(
  panels: dict[str, dict[str, np.ndarray]],
  bins: int = 40,
  columns: int = 3,
  density: bool = True,
  log_y: tuple[str, ...] = (),
):
  """One panel per metric (title -> {group: values}), each group an outline histogram on shared bins."""
  rows = int(np.ceil(len(panels) / columns))
  fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.6 * rows), squeeze=False)
  for ax, (title, groups) in zip(axes.flat, panels.items()):
    finite = [np.asarray(v, np.float64)[np.isfinite(v)] for v in groups.values()]
    values = np.concatenate(finite) if finite else np.zeros(0)
    edges = np.histogram_bin_edges(values, bins=bins) if values.size else bins
    for (group, _), data in zip(groups.items(), finite):
      if data.size:
        ax.hist(data, bins=edges, histtype="step", density=density, label=f"{group} ({data.size:,})")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    if title in log_y:
      ax.set_yscale("log")
    if len(groups) > 1:
      ax.legend(fontsize=6)
  for ax in list(axes.flat)[len(panels) :]:
    ax.axis("off")
  fig.tight_layout()
  return fig


def heatmap(
  matrix: np.ndarray,
  row_names,
  column_names,
  title: str,
  annotate: bool = True,
  log: bool = False,
  cmap: str = "viridis",
  fmt: str = "{:,.0f}",
  size=None,
):
  matrix = np.asarray(matrix, np.float64)
  size = size or (max(4.0, 0.42 * len(column_names) + 2), max(3.0, 0.32 * len(row_names) + 1.4))
  fig, ax = plt.subplots(figsize=size)
  shown = np.log10(matrix + 1) if log else matrix
  image = ax.imshow(shown, cmap=cmap, aspect="auto")
  ax.set_xticks(np.arange(len(column_names)), column_names, rotation=90 if len(column_names) > 8 else 0, fontsize=7)
  ax.set_yticks(np.arange(len(row_names)), row_names, fontsize=7)
  ax.set_title(title, fontsize=10)
  colorbar = fig.colorbar(image, ax=ax, fraction=0.04)
  colorbar.ax.tick_params(labelsize=7)
  if log:
    colorbar.set_label("log10(count + 1)", fontsize=7)
  if annotate and matrix.size <= 400:
    threshold = np.nanmax(shown) / 2 if shown.size else 0
    for (i, j), value in np.ndenumerate(matrix):
      ax.text(
        j,
        i,
        fmt.format(value),
        ha="center",
        va="center",
        fontsize=6,
        color="black" if shown[i, j] > threshold else "white",
      )
  fig.tight_layout()
  return fig


def image_grid(
  images: list[list[np.ndarray | None]],
  row_names=None,
  column_names=None,
  title: str = "",
  cmap: str = "gray",
  scale: float = 0.9,
  vmin=0,
  vmax=255,
  captions=None,
):
  """Rows of 2-D images (None leaves a cell empty); `captions[r][c]` under each image."""
  rows, columns = len(images), max(len(r) for r in images)
  fig, axes = plt.subplots(
    rows, columns, figsize=(scale * columns + (0.9 if row_names else 0), scale * rows + 0.4), squeeze=False
  )
  for r in range(rows):
    for c in range(columns):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      for spine in ax.spines.values():
        spine.set_visible(False)
      image = images[r][c] if c < len(images[r]) else None
      if image is not None:
        ax.imshow(np.squeeze(image), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
      if captions and c < len(captions[r]) and captions[r][c]:
        ax.set_xlabel(captions[r][c], fontsize=6)
      if row_names and c == 0:
        ax.set_ylabel(row_names[r], fontsize=8, rotation=0, ha="right", va="center")
      if column_names and r == 0 and c < len(column_names):
        ax.set_title(column_names[c], fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig


def mosaic(
  rows: list[list[np.ndarray]],
  row_names,
  title: str = "",
  gap: int = 2,
  zoom: float = 1.5,
  cmap: str = "gray",
  vmin=0,
  vmax=255,
  dpi: int = 80,
):
  """Rows of same-size 2-D images tiled into one picture (one imshow: a much smaller PNG than a grid of axes)."""
  height, width = np.squeeze(rows[0][0]).shape
  columns = max(len(r) for r in rows)
  canvas = np.full((len(rows) * (height + gap), columns * (width + gap)), np.nan, np.float32)
  for r, row in enumerate(rows):
    for c, image in enumerate(row):
      canvas[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = (
        np.squeeze(image)
      )
  label_inches = 1.0
  fig = plt.figure(figsize=(canvas.shape[1] * zoom / dpi + label_inches, canvas.shape[0] * zoom / dpi + 0.35))
  ax = fig.add_axes(
    (label_inches / fig.get_figwidth(), 0, 1 - label_inches / fig.get_figwidth(), 1 - 0.35 / fig.get_figheight())
  )
  colormap = plt.get_cmap(cmap).with_extremes(bad="white")
  ax.imshow(canvas, cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="equal")
  ax.set_xticks([])
  ax.set_yticks([r * (height + gap) + height / 2 for r in range(len(rows))], row_names, fontsize=8)
  for spine in ax.spines.values():
    spine.set_visible(False)
  ax.tick_params(length=0)
  if title:
    ax.set_title(title, fontsize=9)
  return fig


def boxes(groups: dict[str, np.ndarray], title: str, ylabel: str, ax=None):
  """Box plots (no fliers) of each group's finite values, with the group's size under its name."""
  own = ax is None
  if own:
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(groups) + 1.5), 3.2))
  data = [np.asarray(v, np.float64)[np.isfinite(v)] for v in groups.values()]
  keep = [i for i, d in enumerate(data) if d.size]
  ax.boxplot([data[i] for i in keep], showfliers=False)
  ax.set_xticks(
    np.arange(1, len(keep) + 1),
    [f"{list(groups)[i]}\n({data[i].size:,})" for i in keep],
    rotation=90 if len(groups) > 8 else 0,
    fontsize=7,
  )
  ax.set_ylabel(ylabel, fontsize=8)
  ax.set_title(title, fontsize=9)
  ax.tick_params(axis="y", labelsize=7)
  if own:
    fig.tight_layout()
    return fig
  return None


def scatter_panels(panels: list[tuple[str, np.ndarray, np.ndarray, list[str]]], columns: int = 2):
  """2-D scatter panels: (title, points [N, 2], group ids [N], group names), coloured by group."""
  rows = int(np.ceil(len(panels) / columns))
  fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.0 * rows), squeeze=False)
  for ax, (title, points, groups, names) in zip(axes.flat, panels):
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for index, name in enumerate(names):
      member = groups == index
      if member.any():
        ax.scatter(
          points[member, 0], points[member, 1], s=6, alpha=0.7, color=cmap(index % cmap.N), label=name, linewidths=0
        )
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(names) <= 24:
      ax.legend(fontsize=6, markerscale=2, ncol=2 if len(names) > 10 else 1, loc="best")
  for ax in list(axes.flat)[len(panels) :]:
    ax.axis("off")
  fig.tight_layout()
  return fig
