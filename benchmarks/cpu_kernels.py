"""The kernels behind the Flax-vs-PyTorch gap on CPU, each timed alone (forward + gradients, milliseconds).

  python benchmarks/cpu_kernels.py                                                  # XLA's defaults
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python benchmarks/cpu_kernels.py  # what emojax.main sets

Rows: DeepCNN's 2x2 max pooling as reduce_window (flax nn.max_pool) and as reshape + max (emojax's
max_pool_2x2), and its 3x3 convolutions, at half width and batch 256 (FER2013's 48x48 input), beside
PyTorch eager (benchmarks/torch_reference.py's library) on the same shapes when torch is installed.
"""

import argparse
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from emojax.models.layers import max_pool_2x2


def milliseconds(fn, *args, repeats=3):
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return 1000 * (time.perf_counter() - start) / repeats


def torch_milliseconds(fn, repeats=3):
  fn()
  start = time.perf_counter()
  for _ in range(repeats):
    fn()
  return 1000 * (time.perf_counter() - start) / repeats


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=256)
  args = parser.parse_args()
  try:
    import torch
  except ImportError:
    torch = None
  rng = np.random.default_rng(0)
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; {jax.devices()[0].device_kind}; batch {args.batch}\n")
  print("| kernel (forward + gradients) | JAX ms | PyTorch ms |\n|---|---|---|")

  for size, channels in ((48, 32), (24, 64), (12, 128)):
    x = jnp.asarray(rng.random((args.batch, size, size, channels), np.float32))
    for name, pool in (("reduce_window", lambda v: nn.max_pool(v, (2, 2), (2, 2))), ("reshape+max", max_pool_2x2)):
      grad = jax.jit(jax.grad(lambda v, pool=pool: (pool(v) ** 2).sum()))
      row = f"| max pool 2x2 {name}, {size}x{size}x{channels} | {milliseconds(grad, x):.0f} |"
      if torch is not None and name == "reshape+max":
        xt = torch.rand(args.batch, channels, size, size, requires_grad=True)
        pooled = lambda: torch.autograd.grad((torch.nn.functional.max_pool2d(xt, 2) ** 2).sum(), xt)
        row += f" {torch_milliseconds(pooled):.0f} |"
      else:
        row += " |"
      print(row)

  for size, cin, cout in ((48, 32, 32), (24, 64, 64), (12, 128, 128), (6, 256, 256)):
    x = jnp.asarray(rng.random((args.batch, size, size, cin), np.float32))
    w = jnp.asarray(rng.random((3, 3, cin, cout), np.float32) * 0.01)
    conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    grads = jax.jit(jax.grad(lambda x, w: conv(x, w).sum(), argnums=(0, 1)))
    row = f"| conv 3x3 {size}x{size}, {cin}->{cout} | {milliseconds(grads, x, w):.0f} |"
    if torch is not None:
      xt = torch.rand(args.batch, cin, size, size, requires_grad=True)
      wt = (torch.rand(cout, cin, 3, 3) * 0.01).requires_grad_()
      conv_grads = lambda: torch.autograd.grad(torch.nn.functional.conv2d(xt, wt, padding=1).sum(), (xt, wt))
      row += f" {torch_milliseconds(conv_grads):.0f} |"
    else:
      row += " |"
    print(row)


if __name__ == "__main__":
  main()
