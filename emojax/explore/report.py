"""The report every corpus's analysis writes: `report.html`, `report.md`, the figures as PNG and `summary.json`.

An analysis adds sections, paragraphs, tables and figures in reading order, and numbers to `summary`; `write`
renders the same blocks twice: Markdown that links the PNGs beside it, and one HTML file with the figures
embedded (base64), so it opens offline, mailed or copied alone. `sampled` notes where a part looked at a sample
instead of every row; the notes open the report, so no figure passes for a full count when it is not.
`Progress` prints what is running, and for how long, to stderr.
"""

import base64
import html
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from emojax.explore.figures import plt
from emojax.reports import markdown_table

FIGURE_DPI = 80  # keeps a figure well under 150 KB; the HTML embeds every one


class Progress:
  """`with progress.step("reading train"):` prints the step and, when it ends, its duration; `tick` counts."""

  def __init__(self, name: str, stream=None, quiet: bool = False):
    self.name, self.stream, self.quiet = name, stream or sys.stderr, quiet
    self.start = time.monotonic()
    self._last_tick = 0.0

  def say(self, message: str) -> None:
    if not self.quiet:
      print(f"[explore {self.name} {time.monotonic() - self.start:6.1f}s] {message}", file=self.stream, flush=True)

  def step(self, message: str):
    return _Step(self, message)

  def tick(self, done: int, total: int, what: str) -> None:
    """Every few seconds (and at the end), `done/total what`."""
    now = time.monotonic()
    if done == total or now - self._last_tick >= 5.0:
      self._last_tick = now
      self.say(f"  {done}/{total} {what}")

  def elapsed(self) -> float:
    return time.monotonic() - self.start


class _Step:
  def __init__(self, progress: Progress, message: str):
    self.progress, self.message = progress, message

  def __enter__(self):
    self.began = time.monotonic()
    self.progress.say(self.message + " ...")
    return self

  def __exit__(self, *exc):
    if exc[0] is None:
      self.progress.say(f"{self.message}: done in {time.monotonic() - self.began:.1f}s")
    return False


class Report:
  """Blocks in reading order plus a `summary` dict; `write()` renders them into `out_dir`."""

  def __init__(self, title: str, out_dir: str | Path, progress: Progress | None = None):
    self.title = title
    self.out_dir = Path(out_dir)
    self.out_dir.mkdir(parents=True, exist_ok=True)
    self.progress = progress or Progress(title, quiet=True)
    self.blocks: list[tuple] = []
    self.notes: list[str] = []
    self.summary: dict = {}
    self.figures: list[str] = []

  def section(self, title: str) -> None:
    self.blocks.append(("section", title))

  def text(self, paragraph: str) -> None:
    self.blocks.append(("text", paragraph))

  def sampled(self, note: str) -> None:
    """Records that a part looked at a sample (what, how many, of how many): listed at the top of the report."""
    self.notes.append(note)

  def table(self, header: list, rows: list[list], caption: str = "", max_rows: int | None = None) -> None:
    total = len(rows)
    if max_rows is not None and total > max_rows:
      rows = rows[:max_rows]
      caption = f"{caption} (first {max_rows} of {total} rows; all of them are in summary.json)".strip()
    self.blocks.append(("table", caption, [str(h) for h in header], [[_cell(v) for v in row] for row in rows]))

  def figure(self, fig, name: str, caption: str) -> str:
    """Saves `fig` as `<name>.png` beside the report and places it here; returns the file name."""
    file = f"{name}.png"
    fig.savefig(self.out_dir / file, dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    _shrink_png(self.out_dir / file)
    self.figures.append(file)
    self.blocks.append(("figure", file, caption))
    return file

  def write(self) -> list[Path]:
    """report.md, report.html and summary.json into `out_dir`; returns every file written (figures too)."""
    self.summary.setdefault("sampling", self.notes)
    self.summary.setdefault("seconds", round(self.progress.elapsed(), 1))
    paths = [self.out_dir / "report.md", self.out_dir / "report.html", self.out_dir / "summary.json"]
    paths[0].write_text(self._markdown(), encoding="utf-8")
    paths[1].write_text(self._html(), encoding="utf-8")
    paths[2].write_text(json.dumps(_jsonable(self.summary), indent=1, ensure_ascii=False), encoding="utf-8")
    return paths + [self.out_dir / f for f in self.figures]

  def _sampling_text(self) -> str:
    if not self.notes:
      return "Every part of this report looked at every row."
    return "Parts of this report looked at a sample to stay within minutes: " + "; ".join(self.notes) + "."

  def _markdown(self) -> str:
    lines = [f"# {self.title}", "", self._sampling_text(), ""]
    for block in self.blocks:
      if block[0] == "section":
        lines += [f"## {block[1]}", ""]
      elif block[0] == "text":
        lines += [block[1], ""]
      elif block[0] == "table":
        _, caption, header, rows = block
        if caption:
          lines += [f"*{caption}*", ""]
        lines += markdown_table(rows, header) + [""]
      elif block[0] == "figure":
        _, file, caption = block
        lines += [f"![{caption}]({file})", "", f"*{caption}*", ""]
    return "\n".join(lines)

  def _html(self) -> str:
    body = [f"<h1>{html.escape(self.title)}</h1>", f"<p class=note>{_inline(self._sampling_text())}</p>"]
    toc = []
    for block in self.blocks:
      if block[0] == "section":
        anchor = f"s{len(toc)}"
        toc.append(f"<li><a href='#{anchor}'>{html.escape(block[1])}</a></li>")
        body.append(f"<h2 id={anchor}>{html.escape(block[1])}</h2>")
      elif block[0] == "text":
        body.append(f"<p>{_inline(block[1])}</p>")
      elif block[0] == "table":
        _, caption, header, rows = block
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body_rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        caption_html = f"<caption>{_inline(caption)}</caption>" if caption else ""
        body.append(f"<table>{caption_html}<thead><tr>{cells}</tr></thead><tbody>{body_rows}</tbody></table>")
      elif block[0] == "figure":
        _, file, caption = block
        data = base64.b64encode((self.out_dir / file).read_bytes()).decode()
        body.append(
          f"<figure><img alt='{html.escape(caption, quote=True)}' src='data:image/png;base64,{data}'>"
          f"<figcaption>{_inline(caption)}</figcaption></figure>"
        )
    body.insert(2, f"<nav><ol>{''.join(toc)}</ol></nav>")
    return (
      f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(self.title)}</title>"
      f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


_CSS = (
  "body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
  "table{border-collapse:collapse;margin:.6em 0;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;"
  "text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}"
  "caption{caption-side:top;text-align:left;font-style:italic;padding:2px 0}figure{margin:1em 0}"
  "img{max-width:100%}figcaption{font-style:italic;font-size:13px}.note{background:#fff8e0;padding:.5em}"
  "code{background:#f3f3f3;padding:0 3px}nav ol{columns:2}"
)


def _shrink_png(path: Path) -> None:
  """Rewrites matplotlib's RGBA PNG as 8-bit gray (when every pixel is gray, exactly) or a 256-colour palette:
  a third of the bytes or less, which matters when the HTML embeds every figure."""
  from PIL import Image

  with Image.open(path) as image:
    rgb = image.convert("RGB")
  channels = np.asarray(rgb)
  if (channels[..., 0] == channels[..., 1]).all() and (channels[..., 1] == channels[..., 2]).all():
    small = rgb.convert("L")
  else:
    small = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
  small.save(path, optimize=True)


def _inline(text: str) -> str:
  """Escaped text with `code` spans."""
  return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _cell(value) -> str:
  if isinstance(value, (float, np.floating)):
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    return f"{int(value):,}"
  return str(value)


def _jsonable(value):
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, np.ndarray):
    return _jsonable(value.tolist())
  if isinstance(value, np.integer):
    return int(value)
  if isinstance(value, np.floating):
    return None if not np.isfinite(value) else round(float(value), 6)
  if isinstance(value, float):
    return None if not np.isfinite(value) else round(value, 6)
  if isinstance(value, bytes):
    return value.hex()
  return value
