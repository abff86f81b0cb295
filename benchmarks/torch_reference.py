"""PyTorch references of emojax's DeepCNN, Conformer and BERT text classifier, for throughput comparisons only
(torch is the `benchmark` extra: `pip install -e .[benchmark]`). Same layers, widths, dropout, optimizer (AdamW,
global-norm clipping) and input shapes as the Flax models they mirror, with equal parameter counts
(tests/test_benchmarks.py), so `benchmarks/throughput.py --torch` can print emojax/PyTorch examples per second
from one run. Nothing here is trained for accuracy.
"""

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def scaled(features: int, width: float) -> int:
  return max(8, int(features * width))  # emojax.models.face.DeepCNN's channel rule


class DeepCNN(nn.Module):
  """emojax.models.face.DeepCNN: 4 blocks of (3x3 conv, BN, ReLU) x 2, 2x2 max pool and dropout, then two dense
  layers (no bias, BN, ReLU, dropout 0.5) and the classifier."""

  def __init__(
    self,
    num_classes=7,
    width=1.0,
    block_features=(64, 128, 256, 512),
    convs_per_block=2,
    block_dropout=(0.25, 0.25, 0.4, 0.5),
    dense_features=(512, 256),
    dense_dropout=0.5,
    image_size=48,
  ):
    super().__init__()
    layers, channels, size = [], 1, image_size
    for features, dropout in zip(block_features, block_dropout):
      for _ in range(convs_per_block):
        out = scaled(features, width)
        # torch's BN momentum is the new statistic's weight: flax's momentum 0.9 is torch's 0.1.
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out, momentum=0.1), nn.ReLU()]
        channels = out
      layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
      size //= 2
    self.features = nn.Sequential(*layers)
    dense, inputs = [], channels * size * size
    for features in dense_features:
      out = scaled(features, width)
      dense += [
        nn.Linear(inputs, out, bias=False),
        nn.BatchNorm1d(out, momentum=0.1),
        nn.ReLU(),
        nn.Dropout(dense_dropout),
      ]
      inputs = out
    self.dense = nn.Sequential(*dense)
    self.classifier = nn.Linear(inputs, num_classes)

  def forward(self, image):  # [B, 1, H, W]
    return self.classifier(self.dense(self.features(image).flatten(1)))


class FeedForward(nn.Module):
  def __init__(self, dim, multiplier, dropout):
    super().__init__()
    self.norm = nn.LayerNorm(dim)
    self.up, self.down = nn.Linear(dim, dim * multiplier), nn.Linear(dim * multiplier, dim)
    self.dropout = nn.Dropout(dropout)

  def forward(self, x):
    return self.dropout(self.down(self.dropout(F.silu(self.up(self.norm(x))))))


def relative_position_encoding(length, dim):
  distances = torch.arange(length - 1, -length, -1, dtype=torch.float32)[:, None]
  frequencies = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
  angles = distances * frequencies
  return torch.stack([torch.sin(angles), torch.cos(angles)], -1).reshape(2 * length - 1, -1)[:, :dim]


class RelativeAttention(nn.Module):
  """emojax.models.layers.RelativePositionSelfAttention: Transformer-XL relative positions, content and position
  biases, the pad-and-reshape relative shift."""

  def __init__(self, dim, heads, dropout):
    super().__init__()
    self.heads, self.head_dim = heads, dim // heads
    self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
    self.position = nn.Linear(dim, dim, bias=False)
    self.content_bias = nn.Parameter(torch.zeros(heads, self.head_dim))
    self.position_bias = nn.Parameter(torch.zeros(heads, self.head_dim))
    self.output, self.dropout = nn.Linear(dim, dim), nn.Dropout(dropout)

  def forward(self, x, mask):
    batch, length, dim = x.shape
    split = lambda t: t.view(*t.shape[:-1], self.heads, self.head_dim)
    query, key, value = split(self.query(x)), split(self.key(x)), split(self.value(x))
    positions = split(self.position(relative_position_encoding(length, dim).to(x.device)))
    content = torch.einsum("bihd,bjhd->bhij", query + self.content_bias, key)
    by_distance = torch.einsum("bihd,rhd->bhir", query + self.position_bias, positions)
    padded = F.pad(by_distance, (1, 0))
    shifted = padded.view(batch, self.heads, 2 * length, length)[:, :, 1:].reshape(batch, self.heads, length, -1)
    scores = (content + shifted[..., :length]) / math.sqrt(self.head_dim)
    scores = scores.masked_fill(~mask[:, None, None, :], -1e9)
    weights = self.dropout(scores.softmax(-1))
    return self.output(torch.einsum("bhij,bjhd->bihd", weights, value).reshape(batch, length, dim))


class ConvolutionModule(nn.Module):
  def __init__(self, dim, kernel_size, dropout):
    super().__init__()
    self.norm, self.pointwise_in = nn.LayerNorm(dim), nn.Linear(dim, 2 * dim)
    self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
    self.batch_norm, self.pointwise_out = nn.BatchNorm1d(dim, momentum=0.1), nn.Linear(dim, dim)
    self.dropout = nn.Dropout(dropout)

  def forward(self, x, mask):
    y = F.glu(self.pointwise_in(self.norm(x)), dim=-1) * mask[..., None]
    y = F.silu(self.batch_norm(self.depthwise(y.transpose(1, 2)))).transpose(1, 2)
    return self.dropout(self.pointwise_out(y))


class ConformerBlock(nn.Module):
  def __init__(self, dim, heads, ff_multiplier, kernel_size, dropout):
    super().__init__()
    self.ff_in, self.ff_out = FeedForward(dim, ff_multiplier, dropout), FeedForward(dim, ff_multiplier, dropout)
    self.attention_norm, self.attention = nn.LayerNorm(dim), RelativeAttention(dim, heads, dropout)
    self.convolution, self.final_norm = ConvolutionModule(dim, kernel_size, dropout), nn.LayerNorm(dim)
    self.dropout = nn.Dropout(dropout)

  def forward(self, x, mask):
    x = x + 0.5 * self.ff_in(x)
    x = x + self.dropout(self.attention(self.attention_norm(x), mask))
    x = x + self.convolution(x, mask)
    return self.final_norm(x + 0.5 * self.ff_out(x))


class Conformer(nn.Module):
  """emojax.models.speech.Conformer (frontend="features"): input standardisation, two 3x3 stride-2 convolutions,
  a projection to model_dim, Conformer blocks, attention pooling, dropout and the classifier."""

  def __init__(
    self,
    num_classes,
    num_features,
    model_dim=96,
    num_layers=4,
    num_heads=4,
    ff_multiplier=4,
    conv_kernel_size=15,
    subsampling_features=32,
    dropout=0.1,
    pooling_hidden=128,
  ):
    super().__init__()
    self.input_norm = nn.BatchNorm1d(num_features, affine=False, momentum=0.1)
    self.subsample = nn.ModuleList(
      [
        nn.Conv2d(1, subsampling_features, 3, 2, padding=1),
        nn.Conv2d(subsampling_features, subsampling_features, 3, 2, padding=1),
      ]
    )
    frequencies = -(-(-(-num_features // 2)) // 2)
    self.projection = nn.Linear(subsampling_features * frequencies, model_dim)
    self.blocks = nn.ModuleList(
      [ConformerBlock(model_dim, num_heads, ff_multiplier, conv_kernel_size, dropout) for _ in range(num_layers)]
    )
    self.pool_hidden, self.pool_score = nn.Linear(model_dim, pooling_hidden), nn.Linear(pooling_hidden, 1)
    self.dropout, self.classifier = nn.Dropout(dropout), nn.Linear(model_dim, num_classes)

  def forward(self, features, num_frames):  # [B, T, D], [B]
    mask = torch.arange(features.shape[1], device=features.device)[None] < num_frames[:, None]
    x = self.input_norm(features.transpose(1, 2)).transpose(1, 2) * mask[..., None]
    x = x[:, None]  # [B, 1, T, D]
    for conv in self.subsample:
      x = F.relu(conv(x))
      num_frames = (num_frames + 1) // 2
    x = x.permute(0, 2, 3, 1).flatten(2)  # [B, T/4, D/4 * C], frequency-major like the Flax reshape
    mask = torch.arange(x.shape[1], device=x.device)[None] < num_frames[:, None]
    x = self.dropout(self.projection(x))
    for block in self.blocks:
      x = block(x, mask)
    scores = self.pool_score(torch.tanh(self.pool_hidden(x)))[..., 0].masked_fill(~mask, -1e9)
    pooled = torch.einsum("bt,btd->bd", scores.softmax(-1), x)
    return self.classifier(self.dropout(pooled))


class TextClassifier(nn.Module):
  """emojax.models.text.TextClassifier over a BERT encoder (Hugging Face's BertModel, no pooler, built from the
  same config.json; random weights suffice for speed): mean pooling over real tokens, dropout, a multi-label
  emotion head and a sentiment head."""

  def __init__(self, folder, num_classes, dropout=0.1, overrides=None, num_sentiments=4):
    super().__init__()
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(folder, **dict(overrides or {}))
    self.encoder = BertModel(config, add_pooling_layer=False)
    self.dropout = nn.Dropout(dropout)
    self.emotion_head = nn.Linear(config.hidden_size, num_classes)
    self.sentiment_head = nn.Linear(config.hidden_size, num_sentiments)

  def forward(self, input_ids, attention_mask):
    hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    mask = attention_mask[..., None].to(hidden.dtype)
    pooled = self.dropout((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))
    return self.emotion_head(pooled), self.sentiment_head(pooled)


def inputs(config, batch: dict) -> tuple:
  """The torch inputs of the reference model from a numpy training batch (images NHWC -> NCHW)."""
  if config.model.name == "face.deep_cnn":
    return (torch.from_numpy(np.ascontiguousarray(np.moveaxis(batch["image"], -1, 1))),)
  if config.model.name == "text.classifier":
    return tuple(torch.from_numpy(np.asarray(batch[k], np.int64)) for k in ("input_ids", "attention_mask"))
  return (
    torch.from_numpy(np.asarray(batch["features"], np.float32)),
    torch.from_numpy(np.asarray(batch["num_frames"], np.int64)),
  )


def targets(config, batch: dict) -> tuple:
  if config.model.name == "text.classifier":
    return tuple(torch.from_numpy(np.asarray(batch[k], np.float32)) for k in ("labels", "sentiment"))
  return (torch.from_numpy(np.asarray(batch["label"], np.int64)),)


def loss(config, outputs, target):
  """The Flax loss's torch twin: cross-entropy (label smoothing as configured); for text, per-label sigmoid
  cross-entropy plus the weighted soft-target sentiment cross-entropy (class weights left out)."""
  if config.model.name == "text.classifier":
    emotion, sentiment = outputs
    return F.binary_cross_entropy_with_logits(
      emotion, target[0]
    ) + config.train.sentiment_loss_weight * F.cross_entropy(sentiment, target[1])
  return F.cross_entropy(outputs, target[0], label_smoothing=float(config.train.get("label_smoothing", 0.0)))


def build(config, batch: dict, num_classes: int) -> nn.Module:
  """The reference of `config.model` for the shapes of a numpy training `batch`."""
  m = config.model
  if m.name == "face.deep_cnn":
    return DeepCNN(num_classes, width=m.width, image_size=batch["image"].shape[1])
  if m.name == "speech.conformer" and m.frontend == "features":
    return Conformer(
      num_classes,
      batch["features"].shape[-1],
      m.model_dim,
      m.num_layers,
      m.num_heads,
      conv_kernel_size=m.conv_kernel_size,
      subsampling_features=m.subsampling_features,
      dropout=m.dropout,
    )
  if m.name == "text.classifier" and (Path(m.pretrained) / "config.json").exists():
    from emojax.models.text import _encoder_family

    if _encoder_family(m.pretrained) == "bert":
      return TextClassifier(m.pretrained, num_classes, m.dropout, overrides=dict(m.encoder_overrides))
  raise ValueError(
    f"No PyTorch reference for config.model.name={m.name!r}; references: face.deep_cnn, "
    "speech.conformer (frontend='features'), text.classifier (a BERT folder)."
  )


def parameter_count(model) -> int:
  return sum(p.numel() for p in model.parameters())


def train_rate(config, batches: list[dict], num_classes: int, warmup=2) -> dict:
  """Examples/s of eager PyTorch training steps (forward, loss, backward, clipping, AdamW) over
  `batches` (numpy training batches, each used once, as the Flax benchmark does), on the GPU when there is one."""
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  model = build(config, batches[0], num_classes).to(device)
  xs = [tuple(t.to(device) for t in inputs(config, b)) for b in batches]
  labels = [tuple(t.to(device) for t in targets(config, b)) for b in batches]
  opt = config.optimizer
  optimizer = torch.optim.AdamW(
    model.parameters(), lr=opt.learning_rate, betas=(opt.b1, opt.b2), weight_decay=opt.weight_decay
  )
  model.train()

  def step(x, y):
    optimizer.zero_grad(set_to_none=True)
    loss(config, model(*x), y).backward()
    if opt.grad_clip_norm > 0:
      torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip_norm)
    optimizer.step()

  for _ in range(warmup):
    step(xs[0], labels[0])
  synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
  synchronize()
  start = time.perf_counter()
  for x, y in zip(xs, labels):
    step(x, y)
  synchronize()
  seconds = time.perf_counter() - start
  return {
    "examples_per_second": sum(len(y[0]) for y in labels) / seconds,
    "parameters": parameter_count(model),
    "threads": torch.get_num_threads(),
    "device": str(device),
    "version": torch.__version__,
  }
