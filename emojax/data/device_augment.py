"""Training augmentation in JAX, on a whole batch, inside the jitted training step.

The host path (emojax.data.augment, run per example by grain) costs a scipy resampling per image on the
CPU; here the same transforms run vectorised on the accelerator, so the input pipeline only has to move
bytes. Each example gets its own draw (the key is split per example and the per-example work vmapped);
every frame of a clip gets its clip's draw, as on the host. The draws come from `jax.random` rather than
the host's numpy Generator, so the two paths agree in distribution, not draw for draw.

Face images: `augment_faces` (crop, flip, rotation as one affine warp; contrast, brightness, random
erasing), then optionally `mix_batch` (mixup / cutmix, whose soft targets `losses.classification_loss`
reads). Speech features: `spec_augment`. All read `config.data.augment` with the host path's field names.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from emojax.data import augment as augment_lib

ERASE_AREA = (0.02, 0.33)  # random erasing: fraction of the image, as augment.random_erase
ERASE_ASPECT = (0.3, 3.3)  # height / width, drawn log-uniformly
ERASE_ATTEMPTS = 10  # rectangles drawn per example; the first that fits is used


def validate(config: ml_collections.ConfigDict) -> None:
  """The host path's checks of the face fields (augment.validate) plus the batch-mixing fields."""
  augment_lib.validate(config)
  for field in ("mixup_alpha", "cutmix_alpha"):
    if config.get(field, 0.0) < 0:
      raise ValueError(
        f"config.data.augment.{field}={config[field]} must be >= 0 (0 turns it off; "
        "1.0 draws the mixing weight uniformly)."
      )


# ----------------------------------------------------------------------------------------------
# Faces: one affine warp, photometric jitter, random erasing.
# ----------------------------------------------------------------------------------------------
def affine_warp(image: jax.Array, matrix: jax.Array, offset: jax.Array) -> jax.Array:
  """[..., H, W, C] -> [..., H, W, C]: output pixel o = (row, col) takes the input's bilinear value at
  matrix @ o + offset, with the edge replicated outside the image.

  This is scipy.ndimage.affine_transform(channel, matrix, offset=offset, order=1, mode="nearest") on every
  channel (and every leading frame) at once, as augment.augment_image_and_points calls it: for linear
  interpolation, replicating the edge pixel is the same as clamping the sample coordinate to the image.
  """
  height, width = image.shape[-3:-1]
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij")
  source_rows = jnp.clip(matrix[0, 0] * rows + matrix[0, 1] * cols + offset[0], 0, height - 1)
  source_cols = jnp.clip(matrix[1, 0] * rows + matrix[1, 1] * cols + offset[1], 0, width - 1)
  top, left = jnp.floor(source_rows), jnp.floor(source_cols)
  row_weight, col_weight = (source_rows - top)[..., None], (source_cols - left)[..., None]
  top, left = top.astype(jnp.int32), left.astype(jnp.int32)
  bottom, right = jnp.minimum(top + 1, height - 1), jnp.minimum(left + 1, width - 1)
  upper = image[..., top, left, :] * (1 - col_weight) + image[..., top, right, :] * col_weight
  lower = image[..., bottom, left, :] * (1 - col_weight) + image[..., bottom, right, :] * col_weight
  return upper * (1 - row_weight) + lower * row_weight


def draw_face_augmentation(key: jax.Array, batch_size: int, image_shape, config: ml_collections.ConfigDict) -> dict:
  """Independent per-example draws of `augment_faces`' random parameters, as a dict of [B, ...] arrays.

  `image_shape` is (H, W, C). Keys: `angle` (radians, uniform in +-rotation_degrees), `flip` (-1 mirrors with
  probability 0.5 when config.flip, else 1), `shift` ((row, col) integers uniform in [-crop_padding,
  crop_padding]), `contrast` (factor uniform in [1 - contrast, 1 + contrast]), `brightness` (offset uniform in
  [-brightness, brightness]) and, when config.random_erasing > 0, `erase` (bool), `erase_box` ((top, left,
  height, width) int32, see `_erase_box`) and `erase_noise` ([H, W, C] uniform in [0, 1)).

  Each example's scalars all come from one vector of uniforms, each quantity at a fixed place in it: one
  random call instead of a dozen keeps the compiled step small (each call inlines a threefry hash), and
  switching one augmentation on or off leaves the others' draws unchanged.
  """
  height, width, channels = image_shape

  def draw_one(key):
    uniform_key, noise_key = jax.random.split(key)
    u = jax.random.uniform(uniform_key, (_NUM_UNIFORMS,))
    degrees, padding = config.rotation_degrees, config.crop_padding
    params = dict(
      angle=jnp.deg2rad(degrees * (2 * u[_ANGLE] - 1)) if degrees else jnp.float32(0),
      flip=jnp.where(u[_FLIP] < 0.5, -1.0, 1.0) if config.flip else jnp.float32(1),
      shift=_uniform_integer(u[_SHIFT], -padding, padding),
      contrast=1 + config.contrast * (2 * u[_CONTRAST] - 1),
      brightness=config.brightness * (2 * u[_BRIGHTNESS] - 1),
    )
    if config.get("random_erasing", 0.0):
      params["erase_box"], fits = _erase_box(u, height, width)
      params["erase"] = (u[_ERASE] < config.random_erasing) & fits
      params["erase_noise"] = jax.random.uniform(noise_key, (height, width, channels))
    return params

  return jax.vmap(draw_one)(jax.random.split(key, batch_size))


# Where each quantity sits in an example's vector of uniforms (draw_face_augmentation).
_ANGLE, _FLIP, _SHIFT, _CONTRAST, _BRIGHTNESS, _ERASE, _ERASE_TOP, _ERASE_LEFT = 0, 1, slice(2, 4), 4, 5, 6, 7, 8
_ERASE_AREAS = slice(9, 9 + ERASE_ATTEMPTS)
_ERASE_ASPECTS = slice(9 + ERASE_ATTEMPTS, 9 + 2 * ERASE_ATTEMPTS)
_NUM_UNIFORMS = 9 + 2 * ERASE_ATTEMPTS


def _uniform_integer(u: jax.Array, low, high) -> jax.Array:
  """Uniforms in [0, 1) -> integers uniform in [low, high] (inclusive; `high` may be traced)."""
  return low + jnp.minimum(jnp.floor(u * (high - low + 1)), high - low).astype(jnp.int32)


def _erase_box(u: jax.Array, height: int, width: int):
  """Random erasing's rectangle (top, left, height, width) from an example's uniforms, drawn as
  augment.random_erase draws it, and whether it fits. ERASE_ATTEMPTS candidates are drawn at once and the
  first that fits strictly inside the image is kept, as the host path redraws up to 10 times; when none fits,
  which at 48x48 is vanishingly rare, nothing is erased. Branch-free, so it vmaps and jits."""
  target = (ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * u[_ERASE_AREAS]) * height * width
  log_low, log_high = np.log(ERASE_ASPECT[0]), np.log(ERASE_ASPECT[1])
  ratio = jnp.exp(log_low + (log_high - log_low) * u[_ERASE_ASPECTS])
  box_height = jnp.round(jnp.sqrt(target * ratio)).astype(jnp.int32)
  box_width = jnp.round(jnp.sqrt(target / ratio)).astype(jnp.int32)
  fitting = (box_height > 0) & (box_height < height) & (box_width > 0) & (box_width < width)
  first = jnp.argmax(fitting)
  box_height, box_width = box_height[first], box_width[first]
  top = _uniform_integer(u[_ERASE_TOP], 0, height - box_height)
  left = _uniform_integer(u[_ERASE_LEFT], 0, width - box_width)
  return jnp.stack([top, left, box_height, box_width]).astype(jnp.int32), fitting.any()


def apply_face_augmentation(batch: dict, params: dict, config: ml_collections.ConfigDict) -> dict:
  """`augment_faces` with its random parameters given (from `draw_face_augmentation`, or chosen by a test).

  The steps and their order are the host path's (augment.augment_image_and_points): the affine warp (moving
  `landmarks` with the image), contrast around each image's (each frame's) mean, brightness, clipping to
  [0, 1], random erasing. A step the config turns off is skipped, so with everything off the output is the
  input bit for bit.
  """
  name = "clip" if "clip" in batch else "image"
  images = batch[name]
  height, width = images.shape[-3:-1]
  out = dict(batch)

  def augment_one(image, points, p):
    if config.crop_padding or config.flip or config.rotation_degrees:
      matrix, offset = augment_lib.warp_matrix_and_offset(p["angle"], p["flip"], p["shift"], height, width, xp=jnp)
      image = affine_warp(image, matrix, offset)  # exact where the draw is the identity
      if points is not None:  # kept as they are under the identity, as the host path does (the round trip is not)
        identity = (p["angle"] == 0) & (p["flip"] > 0) & (p["shift"] == 0).all()
        moved = augment_lib.move_points(points, matrix, offset, height, width, xp=jnp).astype(points.dtype)
        points = jnp.where(identity, points, moved)
    if config.contrast:
      mean = image.mean(axis=(-3, -2, -1), keepdims=True)
      image = (image - mean) * p["contrast"] + mean
    if config.brightness:
      image = image + p["brightness"]
    image = jnp.clip(image, 0.0, 1.0)
    if config.get("random_erasing", 0.0):
      top, left, box_height, box_width = p["erase_box"]
      rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
      inside = (rows >= top) & (rows < top + box_height) & (cols >= left) & (cols < left + box_width)
      image = jnp.where((inside & p["erase"])[..., None], p["erase_noise"], image)  # the same on every frame
    return image, points

  points = batch.get("landmarks")
  if points is None:
    out[name] = jax.vmap(lambda image, p: augment_one(image, None, p)[0])(images, params)
  else:
    out[name], out["landmarks"] = jax.vmap(augment_one)(images, points, params)
  return out


def augment_faces(key: jax.Array, batch: dict, config: ml_collections.ConfigDict) -> dict:
  """A batch's face augmentation on device: `image` [B, H, W, C] (float32 in [0, 1], with `landmarks` [B, P, 2]
  as (x, y) fractions moved along when present) or `clip` [B, T, H, W, C], every frame of a clip drawing the
  same transform. Per example: a crop (integer shift with edge replication), a horizontal flip and a rotation
  folded into one bilinear affine warp, then contrast, brightness, clipping to [0, 1] and random erasing (see
  `draw_face_augmentation` for the distributions). Other keys pass through unchanged; `config.enabled` is the
  caller's to check."""
  validate(config)
  images = batch["clip" if "clip" in batch else "image"]
  params = draw_face_augmentation(key, images.shape[0], images.shape[-3:], config)
  return apply_face_augmentation(batch, params, config)


# ----------------------------------------------------------------------------------------------
# Mixup and cutmix: pairs of examples mixed, with soft targets for the loss.
# ----------------------------------------------------------------------------------------------
def mix_batch(key: jax.Array, batch: dict, config: ml_collections.ConfigDict, num_classes: int) -> dict:
  """Mixup (Zhang et al., 2018) and/or cutmix (Yun et al., 2019) of a batch of `image` [B, H, W, C] (or `clip`
  [B, T, H, W, C]) with single labels `label` [B].

  Each example is paired with the example a random permutation of the batch assigns it, and gains `mix_label`
  (the partner's label) and `mix_weight` (the weight of its own label), which losses.classification_loss
  turns into the soft target w * onehot(label) + (1 - w) * onehot(mix_label). The mixing weight is drawn per
  example from Beta(alpha, alpha): mixup blends the two images with it; cutmix pastes a box of the partner
  whose side is sqrt(1 - weight) of the image's, centred uniformly and clipped to the image, and `mix_weight`
  is then the exact fraction of the image that stays the example's own. With both alphas > 0, one of the two
  is chosen for the whole batch with probability 0.5; with both 0 the batch comes back unchanged.
  `num_classes` is not needed to mix (the loss builds the soft targets from the integer labels).
  """
  del num_classes
  validate(config)
  mixup_alpha, cutmix_alpha = config.get("mixup_alpha", 0.0), config.get("cutmix_alpha", 0.0)
  if not mixup_alpha and not cutmix_alpha:
    return batch
  name = "clip" if "clip" in batch else "image"
  images, labels = batch[name], batch["label"]
  batch_size, (height, width) = images.shape[0], images.shape[-3:-1]
  permutation_key, choice_key, mixup_key, cutmix_key = jax.random.split(key, 4)
  partner = jax.random.permutation(permutation_key, batch_size)
  partner_images = images[partner]
  candidates = []
  if mixup_alpha:
    weight = jax.random.beta(mixup_key, mixup_alpha, mixup_alpha, (batch_size,))
    pixel_weight = weight.reshape((batch_size,) + (1,) * (images.ndim - 1))
    mixed = pixel_weight * images + (1 - pixel_weight) * partner_images
    candidates.append((mixed.astype(images.dtype), weight))
  if cutmix_alpha:
    weight_key, center_key = jax.random.split(cutmix_key)
    side = jnp.sqrt(1 - jax.random.beta(weight_key, cutmix_alpha, cutmix_alpha, (batch_size,)))
    box_height, box_width = (side * height).astype(jnp.int32), (side * width).astype(jnp.int32)
    center = jax.random.uniform(center_key, (2, batch_size))
    center_row, center_col = _uniform_integer(center[0], 0, height - 1), _uniform_integer(center[1], 0, width - 1)
    top, bottom = center_row - box_height // 2, center_row + box_height - box_height // 2
    left, right = center_col - box_width // 2, center_col + box_width - box_width // 2
    rows, cols = jnp.arange(height), jnp.arange(width)
    in_rows = (rows >= top[:, None]) & (rows < bottom[:, None])  # [B, H]
    in_cols = (cols >= left[:, None]) & (cols < right[:, None])  # [B, W]
    pasted = in_rows[:, :, None] & in_cols[:, None, :]  # [B, H, W], clipped by construction
    kept = 1 - pasted.mean(axis=(1, 2), dtype=jnp.float32)
    pasted = pasted.reshape((batch_size,) + (1,) * (images.ndim - 4) + (height, width, 1))
    candidates.append((jnp.where(pasted, partner_images, images), kept))
  (mixed, weight), *others = candidates
  if others:  # both on: one method for the whole batch, each with probability 0.5
    use_cutmix = jax.random.bernoulli(choice_key, 0.5)
    mixed, weight = jnp.where(use_cutmix, others[0][0], mixed), jnp.where(use_cutmix, others[0][1], weight)
  return {**batch, name: mixed, "mix_label": labels[partner], "mix_weight": weight.astype(jnp.float32)}


# ----------------------------------------------------------------------------------------------
# Speech: SpecAugment masks on a batch of padded feature sequences.
# ----------------------------------------------------------------------------------------------
def spec_augment(
  key: jax.Array,
  features: jax.Array,
  num_frames: jax.Array,
  config: ml_collections.ConfigDict,
  spectral_dims: int,
  band_blocks: int = 1,
) -> jax.Array:
  """augment.spec_augment on a batch: features [B, T, D] with `num_frames` [B] valid frames each.

  Per example, config.time_masks spans of 0..min(time_mask_frames, num_frames) valid frames and
  config.freq_masks bands of 0..min(freq_mask_bins, block) of the first `spectral_dims` dims (block =
  spectral_dims // band_blocks; with band_blocks = 3, MFCCs with deltas and delta-deltas, a band covers the
  same coefficients in every block) are set to the utterance's mean of each dim over its valid frames.
  Padded frames and the prosody dims beyond `spectral_dims` never change. Masks, not loops: one pass.
  """
  augment_lib.validate_speech(config)
  batch_size, frames, dims = features.shape
  num_frames = jnp.asarray(num_frames, jnp.int32)
  frame_index, dim_index = jnp.arange(frames), jnp.arange(dims)
  valid = frame_index[None, :] < num_frames[:, None]  # [B, T]
  mean = jnp.where(valid[..., None], features, 0).sum(1) / jnp.maximum(num_frames, 1)[:, None].astype(features.dtype)
  time_key, freq_key = jax.random.split(key)
  time_mask = jnp.zeros((batch_size, frames), bool)
  if config.time_masks:
    start, width = _draw_spans(
      time_key,
      (batch_size, config.time_masks),
      jnp.minimum(config.time_mask_frames, num_frames)[:, None],
      num_frames[:, None],
    )
    time_mask = _in_spans(frame_index, start, width)
  block = spectral_dims // band_blocks
  freq_mask = jnp.zeros((batch_size, dims), bool)
  if config.freq_masks and block > 0:
    start, width = _draw_spans(freq_key, (batch_size, config.freq_masks), min(config.freq_mask_bins, block), block)
    freq_mask = _in_spans(dim_index % block, start, width) & (dim_index < spectral_dims)
  masked = valid[:, :, None] & (dim_index < spectral_dims) & (time_mask[:, :, None] | freq_mask[:, None, :])
  return jnp.where(masked, mean[:, None, :].astype(features.dtype), features)


def _draw_spans(key: jax.Array, shape, max_width, length):
  """(start, width) of spans with width uniform in 0..max_width and start uniform in 0..length - width."""
  u = jax.random.uniform(key, (2,) + tuple(shape))
  width = _uniform_integer(u[0], 0, max_width)
  return _uniform_integer(u[1], 0, length - width), width


def _in_spans(position: jax.Array, start: jax.Array, width: jax.Array) -> jax.Array:
  """[B, N] positions inside any of the [B, M] spans."""
  return ((position >= start[..., None]) & (position < (start + width)[..., None])).any(1)
