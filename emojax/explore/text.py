"""Text: GoEmotions, read by `emojax.data.goemotions` and cleaned and tokenized by `emojax.data.text`.

Label distributions in the 28-label, Ekman and sentiment spaces; labels per comment and their co-occurrence;
token lengths per label and the share truncated at the configured `max_length`; the most distinctive words of
each emotion (weighted log-odds with an informative Dirichlet prior, Monroe et al. 2008); Reddit's `[NAME]` and
`[RELIGION]` masks, emoji, URLs and rows a language identifier does not take for English; exact duplicate texts
(`quality.row_keys`, as `config.data.drop_duplicates` finds them) and those with conflicting labels; and the
VADER compound score per emotion.
"""

import re
from pathlib import Path

import numpy as np

from emojax.data import quality
from emojax.data import text as text_lib
from emojax.data.base import Dataset
from emojax.explore import figures
from emojax.explore.report import Report

URL = re.compile(r"https?://|www\.\w", re.IGNORECASE)
# Pictographs, emoticons, transport and map symbols, dingbats, flags, supplemental symbols.
EMOJI = re.compile("[\U0001f1e6-\U0001f1ff\U0001f300-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff]")
TOP_WORDS = 8
LANGUAGE_CONFIDENCE = 0.9


def analyze(report: Report, splits: dict[str, Dataset], config, sample: int, seed: int = 0) -> None:
  progress = report.progress
  reference = "train" if "train" in splits else next(iter(splits))
  names = splits[reference].class_names
  multi_hot = {s: label_matrix(d) for s, d in splits.items()}
  texts = {s: [str(t) for t in d.arrays["text"]] for s, d in splits.items()}
  _distributions(report, splits, multi_hot, names, reference)
  if splits[reference].multi_label:
    _cooccurrence(report, multi_hot[reference], names, reference)
  with progress.step("token lengths"):
    _token_lengths(report, texts, multi_hot, names, config, reference)
  with progress.step("distinctive words"):
    _distinctive_words(report, texts[reference], multi_hot[reference], names, reference)
  with progress.step("masks, emoji, URLs, languages"):
    _surface(report, texts)
  with progress.step("duplicates"):
    _duplicates(report, splits, texts, multi_hot, names)
  with progress.step("VADER"):
    _vader(report, texts[reference], multi_hot[reference], names, splits[reference], reference)


def label_matrix(dataset: Dataset) -> np.ndarray:
  """[N, C] 0/1: GoEmotions' 28-label multi-hot, or the one-hot of a single-label corpus."""
  if "labels_28" in dataset.arrays:
    return np.asarray(dataset.arrays["labels_28"])
  return np.eye(dataset.num_classes, dtype=np.float32)[np.asarray(dataset.arrays["label"])]


def _distributions(report, splits, multi_hot, names, reference):
  report.section("Label distributions")
  groupings = splits[reference].metadata.get("groupings", {})
  spaces = {f"{len(names)} labels": (names, {s: m for s, m in multi_hot.items()})}
  for space, (space_names, matrix) in groupings.items():
    spaces[space] = (space_names, {s: (m @ matrix > 0).astype(np.float32) for s, m in multi_hot.items()})
  summary = {}
  for space, (space_names, by_split) in spaces.items():
    counts = {s: m.sum(0).astype(int) for s, m in by_split.items()}
    rows = [
      [n] + [int(counts[s][i]) for s in counts] + [f"{100 * counts[s][i] / len(by_split[s]):.2f}%" for s in counts]
      for i, n in enumerate(space_names)
    ]
    report.table(
      ["label"] + list(counts) + [f"{s} share of rows" for s in counts],
      rows,
      f"{space}: rows carrying each label (a row can carry several).",
    )
    log = len(space_names) > 10
    report.figure(
      figures.grouped_bars(counts, list(space_names), f"{space}", log=log),
      f"labels_{space.replace(' ', '_')}",
      f"Rows per label, {space}" + (" (log scale)." if log else "."),
    )
    summary[space] = {s: dict(zip(space_names, c.tolist())) for s, c in counts.items()}
  train = multi_hot[reference].sum(0)
  order = np.argsort(train)
  report.text(
    f"Rarest labels in {reference}: "
    + ", ".join(f"{names[i]} {int(train[i]):,}" for i in order[:5])
    + "; most frequent: "
    + ", ".join(f"{names[i]} {int(train[i]):,}" for i in order[::-1][:3])
    + f" (ratio {train.max() / max(train.min(), 1):.0f}x)."
  )
  report.summary["label_counts"] = summary
  if not splits[reference].multi_label:
    return
  report.section("Labels per comment")
  rows = []
  for split, matrix in multi_hot.items():
    per_row = matrix.sum(1).astype(int)
    counts = np.bincount(np.minimum(per_row, 5), minlength=6)
    rows.append([split, len(per_row)] + counts[1:].tolist() + [f"{100 * (per_row > 1).mean():.1f}%"])
    summary.setdefault("labels_per_row", {})[split] = {str(k): int(v) for k, v in enumerate(counts) if k}
  report.table(["split", "rows", "1 label", "2", "3", "4", "5+", "more than one"], rows)
  report.summary["label_counts"] = summary


def _cooccurrence(report, multi_hot, names, reference):
  report.section("Co-occurrence")
  pairs = multi_hot.T @ multi_hot
  counts = np.diag(pairs).copy()
  off = pairs.copy()
  np.fill_diagonal(off, 0)
  report.figure(
    figures.heatmap(
      off, list(names), list(names), f"Rows with both labels ({reference})", log=True, annotate=False, size=(8.5, 7)
    ),
    "cooccurrence",
    "How many rows carry both labels (log scale; the diagonal left out).",
  )
  rows_total = len(multi_hot)
  i, j = np.triu_indices(len(names), 1)
  lift = off[i, j] * rows_total / np.maximum(counts[i] * counts[j], 1)
  by_count = np.argsort(off[i, j])[::-1][:10]
  frequent = off[i, j] >= 20
  by_lift = [k for k in np.argsort(lift)[::-1] if frequent[k]][:10]
  report.table(
    ["pair", "rows", "lift"],
    [[f"{names[i[k]]} + {names[j[k]]}", int(off[i[k], j[k]]), float(lift[k])] for k in by_count],
    "Most frequent pairs.",
  )
  report.table(
    ["pair", "rows", "lift"],
    [[f"{names[i[k]]} + {names[j[k]]}", int(off[i[k], j[k]]), float(lift[k])] for k in by_lift],
    "Pairs most above independence (lift = observed / expected if independent; pairs in >= 20 rows).",
  )
  report.summary["cooccurrence"] = {
    "top_pairs": [[names[i[k]], names[j[k]], int(off[i[k], j[k]]), float(lift[k])] for k in by_count],
    "top_lift": [[names[i[k]], names[j[k]], int(off[i[k], j[k]]), float(lift[k])] for k in by_lift],
    "matrix": off.astype(int).tolist(),
  }


def token_lengths(texts: list[str], tokenizer_path: str, chunk: int = 4096) -> np.ndarray:
  """Tokens per text (special tokens included), as `text.tokenize` cuts them, measured untruncated (512 max)."""
  lengths = []
  for start in range(0, len(texts), chunk):
    encoded = text_lib.tokenize(texts[start : start + chunk], tokenizer_path, 512)
    lengths.append(encoded["attention_mask"].sum(1))
  return np.concatenate(lengths)


def _token_lengths(report, texts, multi_hot, names, config, reference):
  report.section("Token lengths")
  max_length = int(config.get("max_length", 128))
  try:
    lengths = {s: token_lengths(t, config.tokenizer) for s, t in texts.items()}
    unit = (
      f"tokens of the configured tokenizer, {Path(config.tokenizer).parent.name}/{Path(config.tokenizer).name} "
      "(special tokens included)"
    )
  except FileNotFoundError as error:
    lengths = {s: np.array([len(t.split()) for t in v]) for s, v in texts.items()}
    unit = "whitespace words (no tokenizer: " + str(error).split(".")[0] + ")"
    report.sampled("token lengths are whitespace words, not tokens")
  rows = []
  for split, values in lengths.items():
    q = np.percentile(values, [50, 95, 99])
    rows.append(
      [
        split,
        float(values.mean()),
        q[0],
        q[1],
        q[2],
        int(values.max()),
        f"{100 * (values > max_length).mean():.2f}%",
        f"{100 * (values > 64).mean():.2f}%",
        f"{100 * (values > 32).mean():.2f}%",
      ]
    )
  report.table(
    ["split", "mean", "median", "p95", "p99", "max", f"> max_length={max_length}", "> 64", "> 32"],
    rows,
    f"Lengths in {unit}; the last columns: the share truncated at the configured max_length "
    "(config.data.max_length) and at shorter ones.",
  )
  by_label = {n: lengths[reference][multi_hot[reference][:, i] > 0] for i, n in enumerate(names)}
  report.figure(
    figures.boxes(by_label, f"Token lengths per label ({reference})", "tokens"),
    "token_lengths",
    f"Token lengths per label ({reference}), box = quartiles, whiskers 1.5 IQR.",
  )
  report.summary["token_lengths"] = {
    "unit": unit,
    "max_length": max_length,
    "per_split": {r[0]: dict(zip(["mean", "median", "p95", "p99", "max"], r[1:6])) for r in rows},
    "truncated_share": {s: float((v > max_length).mean()) for s, v in lengths.items()},
    "median_per_label": {n: float(np.median(v)) if len(v) else None for n, v in by_label.items()},
  }


def log_odds(counts: np.ndarray, prior: np.ndarray) -> np.ndarray:
  """z-scores [labels, words] of each label's words against all other labels' (Monroe et al. 2008, eq. 22):
  weighted log-odds ratios with an informative Dirichlet prior `prior` (word counts of the whole corpus)."""
  counts = np.asarray(counts, np.float64)
  prior = np.asarray(prior, np.float64)
  prior_total = prior.sum()
  total = counts.sum(0)
  z = np.zeros_like(counts)
  for k in np.flatnonzero(counts.sum(1) > 0):
    own, rest = counts[k], total - counts[k]
    delta = np.log((own + prior) / (own.sum() + prior_total - own - prior)) - np.log(
      (rest + prior) / (rest.sum() + prior_total - rest - prior)
    )
    z[k] = delta / np.sqrt(1 / (own + prior) + 1 / (rest + prior))
  return z


def _distinctive_words(report, texts, multi_hot, names, reference):
  from sklearn.feature_extraction.text import CountVectorizer

  report.section("Most distinctive words per emotion")
  min_rows = 3 if len(texts) >= 1000 else 1  # a small corpus keeps every word
  vectorizer = CountVectorizer(analyzer=text_lib.content_words, min_df=min_rows)
  words = vectorizer.fit_transform(texts)
  vocabulary = vectorizer.get_feature_names_out()
  counts = np.asarray((words.T @ multi_hot).T)  # [labels, words]
  prior = np.asarray(words.sum(0)).ravel()
  z = log_odds(counts, prior)
  table, summary = [], {}
  for k, name in enumerate(names):
    if not counts[k].any():
      continue
    top = np.argsort(z[k])[::-1][:TOP_WORDS]
    summary[name] = [[str(vocabulary[w]), float(z[k, w])] for w in top]
    table.append([name, ", ".join(f"{vocabulary[w]} ({z[k, w]:.1f})" for w in top)])
  report.table(
    ["label", f"top {TOP_WORDS} words (z-score)"],
    table,
    f"Weighted log-odds (label vs all other labels' rows, {reference}) with an informative Dirichlet "
    f"prior from the whole split's word counts (Monroe et al. 2008); content words as the lexicon path "
    f"sees them (stop words removed, negations and masks kept), words in >= {min_rows} rows.",
  )
  report.summary["distinctive_words"] = summary


def _surface(report, texts):
  import py3langid.langid as langid

  report.section("Masks, emoji, URLs and languages")
  identifier = langid.LanguageIdentifier.from_modelpath(langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True)
  rows, summary, examples = [], {}, []
  for split, values in texts.items():
    cleaned = [text_lib.clean_text(t) for t in values]
    guesses = [identifier.classify(t) for t in cleaned]
    not_english = np.array([language != "en" for language, _ in guesses])
    confident = np.array([language != "en" and p >= LANGUAGE_CONFIDENCE for language, p in guesses])
    entry = {"rows": len(values)}
    for mask in text_lib.REDDIT_MASKS:
      entry[f"rows_with_{mask}"] = sum(mask in t for t in values)
      entry[f"{mask}_occurrences"] = sum(t.count(mask) for t in values)
    entry["rows_with_emoji"] = sum(bool(EMOJI.search(t)) for t in values)
    entry["rows_with_url"] = sum(bool(URL.search(t)) for t in values)
    entry["top_guess_not_english"] = int(not_english.sum())
    entry[f"not_english_confidence_{LANGUAGE_CONFIDENCE}"] = int(confident.sum())
    summary[split] = entry
    rows.append(
      [split, len(values)]
      + [entry[f"rows_with_{m}"] for m in text_lib.REDDIT_MASKS]
      + [
        entry["rows_with_emoji"],
        entry["rows_with_url"],
        entry["top_guess_not_english"],
        entry[f"not_english_confidence_{LANGUAGE_CONFIDENCE}"],
      ]
    )
    ranked = sorted((float(p), language, t) for t, (language, p), flag in zip(cleaned, guesses, not_english) if flag)
    examples += [[split, language, p, t[:120]] for p, language, t in ranked[::-1][:8]]
  report.table(
    ["split", "rows"]
    + [f"rows with {m}" for m in text_lib.REDDIT_MASKS]
    + ["with emoji", "with a URL", "language guess not English", f"... with p >= {LANGUAGE_CONFIDENCE}"],
    rows,
    "Emoji: Unicode pictograph and symbol ranges; languages: py3langid (langid.py's model) on the "
    "cleaned text, probabilities normalised.",
  )
  report.text(
    "A language identifier on one-line Reddit comments guesses wrong often: the rows below are the ones "
    "it is surest are not English. Only the confident count is a fair estimate of non-English rows."
  )
  report.table(["split", "guess", "p", "text"], examples, "Rows most confidently not English.")
  report.summary["surface"] = summary


def _duplicates(report, splits, texts, multi_hot, names):
  report.section("Duplicate texts")
  members: dict = {}
  for split, dataset in splits.items():
    for row, key in enumerate(quality.row_keys(dataset)):
      members.setdefault(key, []).append((split, row))
  groups = [g for g in members.values() if len(g) > 1]
  label_sets = lambda split, row: "+".join(names[i] for i in np.flatnonzero(multi_hot[split][row]))  # noqa: E731
  summary = {"groups": [], "within": {}, "across": {}}
  for group in groups:
    labels = [label_sets(s, r) for s, r in group]
    summary["groups"].append(
      {
        "text": texts[group[0][0]][group[0][1]],
        "members": [[s, str(splits[s].arrays["id"][r]), label] for (s, r), label in zip(group, labels)],
        "splits": sorted({s for s, _ in group}),
        "conflicting": len(set(labels)) > 1,
      }
    )
  for split in splits:
    within = [g for g in summary["groups"] if g["splits"] == [split]]
    summary["within"][split] = {
      "groups": len(within),
      "rows": sum(len(g["members"]) for g in within),
      "conflicting_groups": sum(g["conflicting"] for g in within),
    }
  cross = [g for g in summary["groups"] if len(g["splits"]) > 1]
  rows = [[s, v["groups"], v["rows"], v["conflicting_groups"]] for s, v in summary["within"].items()]
  rows.append(
    ["across splits", len(cross), sum(len(g["members"]) for g in cross), sum(g["conflicting"] for g in cross)]
  )
  report.table(
    ["where", "groups", "rows in them", "groups with conflicting labels"],
    rows,
    "Identical texts (the raw string, as `config.data.drop_duplicates` compares them).",
  )
  if "train" in splits:
    for split in [s for s in splits if s != "train"]:
      copied, other_label = quality.copies_of(splits[split], splits["train"])
      summary["across"][split] = {
        "rows_with_train_copy": int(copied.sum()),
        "with_another_label": int(other_label.sum()),
      }
      report.text(
        f"{int(copied.sum())} {split} rows repeat a train text exactly; {int(other_label.sum())} of them "
        "with another label set."
      )
  ordered = sorted(summary["groups"], key=lambda g: (not g["conflicting"], -len(g["members"])))
  report.table(
    ["text", "members (split: id = labels)"],
    [[g["text"][:100], "; ".join(f"{s}: {i} = {label}" for s, i, label in g["members"][:5])] for g in ordered],
    "Duplicate groups, conflicting ones first.",
    max_rows=20,
  )
  report.summary["duplicates"] = summary


def _vader(report, texts, multi_hot, names, dataset, reference):
  from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

  report.section("VADER compound score per emotion")
  analyzer = SentimentIntensityAnalyzer()
  compound = np.array([analyzer.polarity_scores(text_lib.clean_text(t))["compound"] for t in texts])
  by_label = {n: compound[multi_hot[:, i] > 0] for i, n in enumerate(names) if (multi_hot[:, i] > 0).any()}
  order = sorted(by_label, key=lambda n: np.median(by_label[n]) if len(by_label[n]) else 0)
  report.figure(
    figures.boxes({n: by_label[n] for n in order}, f"VADER compound per label ({reference})", "compound"),
    "vader",
    "VADER compound score (-1 negative .. +1 positive) of the rows of each label, ordered by median.",
  )
  groupings = dataset.metadata.get("groupings", {})
  rows = [
    [n, len(v), float(np.median(v)), f"{100 * (v > 0.05).mean():.0f}%", f"{100 * (v < -0.05).mean():.0f}%"]
    for n, v in ((n, by_label[n]) for n in order)
  ]
  report.table(
    ["label", "rows", "median compound", "positive (> 0.05)", "negative (< -0.05)"],
    rows,
    "VADER's own thresholds: compound > 0.05 positive, < -0.05 negative.",
  )
  summary = {r[0]: {"rows": r[1], "median_compound": r[2]} for r in rows}
  if "sentiment" in groupings:
    sentiment_names, matrix = groupings["sentiment"]
    sentiment = multi_hot @ matrix > 0
    summary["by_sentiment"] = {
      n: float(np.median(compound[sentiment[:, k]])) if sentiment[:, k].any() else None
      for k, n in enumerate(sentiment_names)
    }
  report.summary["vader"] = summary
