"""Swin transformer blocks (Liu et al., 2021) sized for the small feature maps of 48x48 faces.

A face CNN's 12x12 feature map is refined by stages of Swin blocks: multi-head self-attention inside
non-overlapping `window` x `window` windows with a learned relative position bias, every second block on
windows shifted by `window // 2` (cyclically rolled, with the attention mask that keeps regions which were
not neighbours in the image apart), and patch merging (2x2 neighbours -> one token, channels doubled)
between stages. `SwinRefinement` returns the refined map and its pooled features; the face models add
those to their own features (`config.model.swin=True`).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def window_partition(x, window: int):
  """[B, H, W, C] -> [B * H/window * W/window, window * window, C] (row-major windows)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // window, window, w // window, window, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(-1, window * window, c)


def window_reverse(windows, window: int, height: int, width: int):
  """The inverse of `window_partition`: [B * nW, window * window, C] -> [B, H, W, C]."""
  c = windows.shape[-1]
  x = windows.reshape(-1, height // window, width // window, window, window, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(-1, height, width, c)


def relative_position_index(window: int) -> np.ndarray:
  """[window^2, window^2] index into the (2 window - 1)^2 table of relative offsets (dy, dx)."""
  coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)  # [2, N]
  relative = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)  # [N, N, 2]
  return relative[..., 0] * (2 * window - 1) + relative[..., 1]


def shift_attention_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
  """[nW, window^2, window^2]: 0 where two tokens of a shifted window may attend, -inf-like where the cyclic
  roll brought together tokens from different image regions (Swin's nine-region labelling)."""
  regions = np.zeros((1, height, width, 1), np.float32)
  label = 0
  for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
    for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
      regions[:, hs, ws, :] = label
      label += 1
  windows = np.asarray(window_partition(regions, window))[..., 0]  # [nW, N]
  return np.where(windows[:, :, None] != windows[:, None, :], -1e9, 0.0).astype(np.float32)


class WindowAttention(nn.Module):
  """Multi-head self-attention within each window, with a learned relative position bias per head."""

  num_heads: int
  window: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask=None):
    """x [B*nW, N, C]; mask [nW, N, N] or None. Returns (output, attention weights [B*nW, heads, N, N])."""
    windows, tokens, channels = x.shape
    if channels % self.num_heads:
      raise ValueError(f"Swin width {channels} is not divisible by num_heads={self.num_heads}.")
    head_dim = channels // self.num_heads
    qkv = nn.Dense(3 * channels, dtype=self.dtype, name="qkv")(x).reshape(windows, tokens, 3, self.num_heads, head_dim)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B*nW, heads, N, d]
    logits = (q @ k.transpose(0, 1, 3, 2)).astype(jnp.float32) / np.sqrt(head_dim)
    table = self.param(
      "relative_position_bias", nn.initializers.truncated_normal(0.02), ((2 * self.window - 1) ** 2, self.num_heads)
    )
    bias = table[relative_position_index(self.window).reshape(-1)].reshape(tokens, tokens, self.num_heads)
    logits = logits + bias.transpose(2, 0, 1)[None]
    if mask is not None:
      num_windows = mask.shape[0]
      logits = logits.reshape(-1, num_windows, self.num_heads, tokens, tokens) + mask[None, :, None]
      logits = logits.reshape(windows, self.num_heads, tokens, tokens)
    weights = jax.nn.softmax(logits, axis=-1)
    out = (weights.astype(v.dtype) @ v).transpose(0, 2, 1, 3).reshape(windows, tokens, channels)
    return nn.Dense(channels, dtype=self.dtype, name="projection")(out), weights


class SwinBlock(nn.Module):
  num_heads: int
  window: int = 6
  shift: int = 0
  mlp_ratio: float = 2.0
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    b, h, w, c = x.shape
    window, shift = min(self.window, h, w), self.shift
    if window == min(h, w):  # one window covers the map: nothing to shift (as in Swin)
      shift = 0
    if h % window or w % window:
      raise ValueError(f"A {h}x{w} map does not tile into {window}x{window} windows; choose swin_window to divide it.")
    y = nn.LayerNorm(dtype=self.dtype, name="norm1")(x)
    if shift:
      y = jnp.roll(y, (-shift, -shift), axis=(1, 2))
    mask = jnp.asarray(shift_attention_mask(h, w, window, shift)) if shift else None
    y, _ = WindowAttention(self.num_heads, window, self.dtype, name="attention")(window_partition(y, window), mask)
    y = window_reverse(y, window, h, w)
    if shift:
      y = jnp.roll(y, (shift, shift), axis=(1, 2))
    x = x + nn.Dropout(self.dropout, deterministic=not train)(y)
    y = nn.LayerNorm(dtype=self.dtype, name="norm2")(x)
    y = nn.Dense(int(c * self.mlp_ratio), dtype=self.dtype, name="mlp_hidden")(y)
    y = nn.Dense(c, dtype=self.dtype, name="mlp_out")(nn.gelu(y))
    return x + nn.Dropout(self.dropout, deterministic=not train)(y)


class PatchMerging(nn.Module):
  """2x2 neighbouring tokens -> one token of 4C channels, layer norm, linear to 2C: half the resolution."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    if h % 2 or w % 2:
      raise ValueError(f"Patch merging needs an even map; got {h}x{w}.")
    x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
    return nn.Dense(2 * c, use_bias=False, dtype=self.dtype, name="reduction")(nn.LayerNorm(dtype=self.dtype)(x))


class SwinRefinement(nn.Module):
  """A CNN feature map [B, H, W, C] -> (refined map, pooled features [B, D]) through Swin stages."""

  features: int = 96
  depths: Sequence[int] = (2, 2)
  num_heads: Sequence[int] = (3, 6)
  window: int = 6
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Dense(self.features, dtype=self.dtype, name="embed")(x.astype(self.dtype))
    for stage, (depth, heads) in enumerate(zip(self.depths, self.num_heads, strict=True)):
      if stage > 0:
        x = PatchMerging(self.dtype, name=f"merge_{stage}")(x)
      for block in range(depth):
        x = SwinBlock(
          heads,
          self.window,
          shift=(self.window // 2) * (block % 2),
          dropout=self.dropout,
          dtype=self.dtype,
          name=f"stage{stage}_block{block}",
        )(x, train)
    x = nn.LayerNorm(dtype=self.dtype, name="norm")(x)
    return x, x.mean(axis=(1, 2))
