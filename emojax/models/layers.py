"""Building blocks shared by model families."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class ConvBatchNormReLU(nn.Module):
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  activation: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Conv(self.features, self.kernel_size, self.strides, use_bias=False, dtype=self.dtype)(x)
    # BN statistics stay float32 even when the convolutions run in bfloat16.
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
    return nn.relu(x) if self.activation else x


def max_pool_2x2(x):
  """2x2 max pooling, stride 2, over [B, H, W, C] (an odd last row or column is dropped, like VALID padding).

  The same values as `nn.max_pool(x, (2, 2), (2, 2))`, computed as a reshape and a max, with the gradient written
  out (`_pool_2x2`): XLA:CPU lowers reduce_window's gradient to select-and-scatter, 2.6-11x slower than this here
  (benchmarks/BENCHMARKS.md). The gradient goes to the first maximum of each window, as in reduce_window.
  """
  height, width = x.shape[1] - x.shape[1] % 2, x.shape[2] - x.shape[2] % 2
  return _pool_2x2(x[:, :height, :width])


def _windows(x):
  batch, height, width, channels = x.shape
  return x.reshape(batch, height // 2, 2, width // 2, 2, channels)


@jax.custom_vjp
def _pool_2x2(x):
  return _windows(x).max(axis=(2, 4))


def _pool_2x2_forward(x):
  return _pool_2x2(x), x


def _pool_2x2_backward(x, grad):
  # Written out, not jnp.max's own rule (which splits the gradient among tied maxima): partitioned over several
  # devices of one process, XLA:CPU computed that rule's gradient far from one device's (tests/test_sharding.py,
  # benchmarks/BENCHMARKS.md).
  batch, height, width, channels = x.shape
  candidates = _windows(x).transpose(0, 1, 3, 5, 2, 4).reshape(batch, height // 2, width // 2, channels, 4)
  routed = jax.nn.one_hot(jnp.argmax(candidates, axis=-1), 4, dtype=grad.dtype) * grad[..., None]
  routed = routed.reshape(batch, height // 2, width // 2, channels, 2, 2).transpose(0, 1, 4, 2, 5, 3)
  return (routed.reshape(x.shape),)


_pool_2x2.defvjp(_pool_2x2_forward, _pool_2x2_backward)


class ChannelSpatialAttention(nn.Module):
  """Feature attention over a [B, H, W, C] map: which channels, then where (CBAM, Woo et al. 2018).

  Channel weights come from an MLP over the average- and max-pooled descriptors; spatial weights
  from a 7x7 convolution over the channel-wise average and max. Returns the reweighted map and the
  spatial attention map so it can be inspected.
  """

  reduction: int = 8
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    hidden = nn.Dense(max(channels // self.reduction, 4), dtype=self.dtype, name="channel_hidden")
    out = nn.Dense(channels, dtype=self.dtype, name="channel_out")
    mlp = lambda v: out(nn.relu(hidden(v)))
    channel = nn.sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))
    x = x * channel[:, None, None, :]
    pooled = jnp.concatenate([x.mean(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)], axis=-1)
    spatial = nn.sigmoid(nn.Conv(1, (7, 7), dtype=self.dtype, name="spatial")(pooled))
    return x * spatial, spatial[..., 0]


def two_pass_layer_norm(epsilon, dtype, name):
  """LayerNorm with the two-pass variance: parity with torch (Hugging Face ports) at small epsilons, where
  E[x^2] - E[x]^2 loses digits on large activations."""
  return nn.LayerNorm(epsilon=epsilon, use_fast_variance=False, dtype=dtype, name=name)


# ----------------------------------------------------------------------------------------------
# Sequences: masks are float or bool [B, T], 1 on real frames and 0 on padding.
# ----------------------------------------------------------------------------------------------
def length_mask(lengths, max_length: int):
  return jnp.arange(max_length)[None, :] < jnp.asarray(lengths)[:, None]


def masked_mean(x, mask):
  """Mean over time of [B, T, D] counting real frames only."""
  mask = mask.astype(x.dtype)[..., None]
  return (x * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)


class AttentionPooling(nn.Module):
  """Learned weighted mean over time: a_t = softmax_t(w . tanh(W x_t)), pooled = sum_t a_t x_t.

  Returns the pooled vector and the weights, so which frames carried the decision can be inspected.
  A `gate` [B, T] in (0, 1] multiplies each weight before renormalising (a_t ~ g_t softmax_t(...)).
  """

  hidden: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, gate=None):
    scores = nn.Dense(1, dtype=self.dtype, name="score")(jnp.tanh(nn.Dense(self.hidden, dtype=self.dtype)(x)))[..., 0]
    scores = scores.astype(jnp.float32)
    if gate is not None:
      scores = scores + jnp.log(jnp.maximum(gate.astype(jnp.float32), 1e-6))
    scores = jnp.where(mask, scores, -1e9)
    weights = jax.nn.softmax(scores, axis=-1)
    return jnp.einsum("bt,btd->bd", weights.astype(x.dtype), x), weights


class ConformerFeedForward(nn.Module):
  """Layer norm, expand x4 with swish, project back; the block adds half of it (macaron style)."""

  model_dim: int
  multiplier: int = 4
  dropout: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.swish(nn.Dense(self.model_dim * self.multiplier, dtype=self.dtype)(y))
    y = nn.Dropout(self.dropout, deterministic=not train)(y)
    y = nn.Dense(self.model_dim, dtype=self.dtype)(y)
    return nn.Dropout(self.dropout, deterministic=not train)(y)


def relative_position_encoding(length: int, dim: int):
  """Sinusoidal encodings of relative distances length-1, ..., 0, ..., -(length-1): [2 * length - 1, dim]."""
  distances = jnp.arange(length - 1, -length, -1, dtype=jnp.float32)[:, None]
  frequencies = jnp.exp(jnp.arange(0, dim, 2, dtype=jnp.float32) * (-jnp.log(10000.0) / dim))
  angles = distances * frequencies
  return jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(2 * length - 1, -1)[:, :dim]


def relative_shift(scores):
  """[B, H, T, 2T-1] scores by distance (column r = distance T-1-r) -> [B, H, T, T] with entry (i, j)
  at distance i - j, i.e. column T-1-i+j. Transformer-XL's pad-and-reshape trick: no gather, so its
  gradient is a reshape too rather than a scatter."""
  batch, heads, length, width = scores.shape
  padded = jnp.pad(scores, ((0, 0), (0, 0), (0, 0), (1, 0)))  # [B, H, T, 2T]
  shifted = padded.reshape(batch, heads, width + 1, length)[:, :, 1:].reshape(batch, heads, length, width)
  return shifted[..., :length]


class RelativePositionSelfAttention(nn.Module):
  """Multi-head self-attention with Transformer-XL relative positions, as in the Conformer paper.

  score(i, j) = (q_i + u) . k_j + (q_i + v) . W_p r_{i-j}, with learned biases u, v per head and
  sinusoidal r of the distance i - j; masked keys get no weight.
  """

  num_heads: int
  dropout: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, train: bool):
    batch, length, dim = x.shape
    if dim % self.num_heads:
      raise ValueError(f"Conformer model_dim={dim} must be divisible by num_heads={self.num_heads}.")
    head_dim = dim // self.num_heads
    project = lambda name, bias=True: nn.DenseGeneral(
      (self.num_heads, head_dim), use_bias=bias, dtype=self.dtype, name=name
    )
    query, key, value = project("query")(x), project("key")(x), project("value")(x)
    positions = project("position", bias=False)(relative_position_encoding(length, dim).astype(self.dtype))
    content_bias = self.param("content_bias", nn.initializers.zeros, (self.num_heads, head_dim))
    position_bias = self.param("position_bias", nn.initializers.zeros, (self.num_heads, head_dim))
    content = jnp.einsum("bihd,bjhd->bhij", query + content_bias.astype(self.dtype), key)
    by_distance = jnp.einsum("bihd,rhd->bhir", query + position_bias.astype(self.dtype), positions)
    position = relative_shift(by_distance)
    scores = (content + position).astype(jnp.float32) / jnp.sqrt(head_dim)
    scores = jnp.where(mask[:, None, None, :], scores, -1e9)
    weights = nn.Dropout(self.dropout, deterministic=not train)(jax.nn.softmax(scores, axis=-1))
    out = jnp.einsum("bhij,bjhd->bihd", weights.astype(self.dtype), value)
    return nn.DenseGeneral(dim, axis=(-2, -1), dtype=self.dtype, name="output")(out)


class ConformerConvolution(nn.Module):
  """Layer norm, pointwise conv with GLU, depthwise conv, batch norm, swish, pointwise conv."""

  kernel_size: int = 15
  dropout: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, train: bool):
    dim = x.shape[-1]
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.glu(nn.Dense(2 * dim, dtype=self.dtype, name="pointwise_in")(y), axis=-1)
    y = jnp.where(mask[..., None], y, 0)  # padding must not leak into real frames through the kernel
    y = nn.Conv(dim, (self.kernel_size,), feature_group_count=dim, dtype=self.dtype, name="depthwise")(y)
    y = nn.swish(nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(y))
    y = nn.Dense(dim, dtype=self.dtype, name="pointwise_out")(y)
    return nn.Dropout(self.dropout, deterministic=not train)(y)


class ConformerBlock(nn.Module):
  """x + FF/2 -> + MHSA(relative) -> + Conv -> + FF/2 -> LayerNorm (Gulati et al., 2020)."""

  num_heads: int = 4
  ff_multiplier: int = 4
  conv_kernel_size: int = 15
  dropout: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, train: bool):
    dim = x.shape[-1]
    x = x + 0.5 * ConformerFeedForward(dim, self.ff_multiplier, self.dropout, self.dtype, name="ff_in")(x, train)
    attention = RelativePositionSelfAttention(self.num_heads, self.dropout, self.dtype, name="attention")
    y = attention(nn.LayerNorm(dtype=self.dtype)(x), mask, train)
    x = x + nn.Dropout(self.dropout, deterministic=not train)(y)
    x = x + ConformerConvolution(self.conv_kernel_size, self.dropout, self.dtype, name="convolution")(x, mask, train)
    x = x + 0.5 * ConformerFeedForward(dim, self.ff_multiplier, self.dropout, self.dtype, name="ff_out")(x, train)
    return nn.LayerNorm(dtype=self.dtype, name="final_norm")(x)
