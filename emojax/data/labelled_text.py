"""Labelled text in CSV or TSV: one text and one emotion label per row, the labels mapped to Ekman-7 by name.

  config.data.name = "labelled_text"
  config.data.root          a .csv / .tsv file (every split is the whole file), or a folder of <split>.csv|.tsv
  config.data.text_column   the column holding the text (a header name, or a 0-based index for files without one)
  config.data.label_column  the column holding the label name
  config.data.delimiter     "" = by suffix (`,` for .csv, tab for .tsv and .txt)
  config.data.tokenizer, max_length, lexicon   as for GoEmotions (a text model's bundle supplies them)

Label names are read through `labels.ekman7_name` (joy -> happiness, angry -> anger, sad -> sadness, ...), so a
GoEmotions model can be scored on another text corpus in their shared Ekman-7 space. A row with an empty text, a
missing field, or a label that names no Ekman class (love, shame, ...) is skipped, counted and named.
"""

import csv
from pathlib import Path

import numpy as np

from emojax import labels
from emojax.data.base import Dataset, report_skipped

SUFFIXES = (".csv", ".tsv", ".txt")
LAYOUT_HELP = (
  "Labelled text is read from a CSV/TSV file (or a folder of <split>.csv / <split>.tsv files) with a "
  "text column and a label column: name them with --text-column and --label-column "
  "(config.data.text_column / label_column)."
)


def source_file(root: Path, split: str) -> Path:
  """The file holding `split`: the root itself when it is a file, else `<root>/<split>.<csv|tsv|txt>`."""
  if root.is_file():
    return root
  if not root.is_dir():
    raise FileNotFoundError(f"No labelled text at {root}. {LAYOUT_HELP}")
  names = {"validation": ("validation", "dev", "val"), "all": ("all",)}.get(split, (split,))
  for name in names:
    for suffix in SUFFIXES:
      if (root / f"{name}{suffix}").is_file():
        return root / f"{name}{suffix}"
  found = sorted(p.name for p in root.iterdir())[:20]
  raise FileNotFoundError(
    f"No {split!r} file ({', '.join(f'{n}.csv|.tsv' for n in names)}) in {root} (found: {found}). {LAYOUT_HELP}"
  )


def _column(value, header: list[str] | None, path: Path, what: str) -> int:
  if isinstance(value, int) or (isinstance(value, str) and value.isdigit() and header is None):
    return int(value)
  if header is None or value not in header:
    raise ValueError(f"{path}: no {what} column {value!r} (columns: {header}). {LAYOUT_HELP}")
  return header.index(value)


def read_rows(path: Path, text_column, label_column, delimiter: str = ""):
  """(texts, Ekman-7 label ids, row ids, skipped-row descriptions) of one file."""
  delimiter = delimiter or ("," if path.suffix.lower() == ".csv" else "\t")
  with open(path, encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f, delimiter=delimiter))
  if not rows:
    raise ValueError(f"{path} is empty. {LAYOUT_HELP}")
  by_index = all(isinstance(c, int) or str(c).isdigit() for c in (text_column, label_column))
  header = None if by_index else [name.strip() for name in rows[0]]
  text_at = _column(text_column, header, path, "text")
  label_at = _column(label_column, header, path, "label")
  texts, label_ids, ids, skipped = [], [], [], []
  for number, row in enumerate(rows[0 if by_index else 1 :], start=1 if by_index else 2):
    where = f"{path.name}:{number}"
    if len(row) <= max(text_at, label_at):
      skipped.append(f"{where}: {len(row)} fields, the text and label columns need {max(text_at, label_at) + 1}")
      continue
    text, label = row[text_at].strip(), row[label_at].strip()
    ekman = labels.ekman7_name(label)
    if not text:
      skipped.append(f"{where}: empty text")
    elif ekman is None:
      skipped.append(f"{where}: label {label!r} names no Ekman-7 class ({', '.join(labels.EKMAN7)})")
    else:
      texts.append(text)
      label_ids.append(labels.EKMAN7.index(ekman))
      ids.append(where)
  return texts, np.asarray(label_ids, np.int32), ids, skipped


def load(config, split: str) -> Dataset:
  """One split, tokenized like GoEmotions (`text.tokenize`), with Ekman-7 single labels."""
  from emojax.data import text

  path = source_file(Path(config.root).expanduser(), split)
  texts, label_ids, ids, skipped = read_rows(path, config.text_column, config.label_column, config.get("delimiter", ""))
  report_skipped(skipped, f"rows of {path}")
  if not texts:
    raise ValueError(f"{path} holds no usable rows ({len(skipped)} skipped; first: {skipped[:2]}). {LAYOUT_HELP}")
  arrays = {"text": np.asarray(texts, dtype=object), "id": np.asarray(ids, dtype=object), "label": label_ids}
  arrays.update(text.tokenize(texts, config.tokenizer, config.max_length))
  inputs = ("input_ids", "attention_mask", "label")
  if config.get("lexicon", False):
    arrays["lexicon"] = text.lexicon_features(texts, config.get("cache_dir", ""))
    inputs += ("lexicon",)
  return Dataset(arrays=arrays, class_names=labels.EKMAN7, skipped=skipped, model_inputs=inputs)
