"""Building blocks shared by model families."""

from typing import Any

import flax.linen as nn
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
