"""On-device augmentation (emojax.data.device_augment) against the host path and its configured distributions."""

import functools

import jax
import ml_collections
import numpy as np
import optax
import pytest
from scipy import ndimage

from emojax import losses
from emojax.data import augment
from emojax.data import device_augment as device


def face_config(**fields):
  """Every face augmentation off unless named."""
  values = dict(
    enabled=True,
    crop_padding=0,
    flip=False,
    rotation_degrees=0.0,
    contrast=0.0,
    brightness=0.0,
    random_erasing=0.0,
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
  )
  return ml_collections.ConfigDict({**values, **fields})


def speech_config(**fields):
  from configs.speech import get_config

  config = get_config().data.augment
  config.update(fields)
  return config


class ScriptedRng:
  """Stands in for the numpy Generator augment.augment_image_and_points draws from, returning chosen values."""

  def __init__(self, uniform, random, integers):
    self.values = {"uniform": list(uniform), "random": list(random), "integers": list(integers)}

  def uniform(self, low, high):
    value = self.values["uniform"].pop(0)
    assert low <= value <= high
    return np.float64(value)

  def random(self):
    return self.values["random"].pop(0)

  def integers(self, low, high, size):
    value = np.asarray(self.values["integers"].pop(0))
    assert value.shape == (size,) and (low <= value).all() and (value < high).all()
    return value


# --- the warp against scipy and the host path ------------------------------------------------------------------
def test_affine_warp_equals_scipy_affine_transform():
  image = np.random.default_rng(0).random((48, 48, 3)).astype(np.float32)
  warp = jax.jit(device.affine_warp)
  for degrees, flip, shift in [
    (12.0, -1.0, (3, -2)),
    (-170.0, 1.0, (-4, 4)),
    (45.0, -1.0, (0, 0)),
    (0.0, -1.0, (1, 0)),
  ]:
    matrix, offset = augment.warp_matrix_and_offset(np.deg2rad(degrees), flip, np.array(shift), 48, 48)
    expected = np.stack(
      [ndimage.affine_transform(image[..., c], matrix, offset=offset, order=1, mode="nearest") for c in range(3)],
      axis=-1,
    )
    np.testing.assert_allclose(warp(image, matrix.astype(np.float32), offset.astype(np.float32)), expected, atol=1e-5)


def test_given_parameters_reproduce_the_host_path_with_landmarks():
  config = face_config(crop_padding=4, flip=True, rotation_degrees=30.0, contrast=0.3, brightness=0.2)
  rng = np.random.default_rng(1)
  images = rng.random((5, 48, 48, 3)).astype(np.float32)
  points = rng.uniform(0.1, 0.9, (5, 5, 2)).astype(np.float32)
  draws = [
    (25.0, True, (4, -3), 1.2, -0.1),
    (-30.0, False, (-4, 0), 0.75, 0.2),
    (0.0, True, (0, 0), 1.0, 0.0),
    (7.5, False, (2, 2), 1.3, 0.05),
    (0.0, False, (0, 0), 0.9, 0.1),
  ]
  params = {
    "angle": np.deg2rad([d[0] for d in draws]).astype(np.float32),
    "flip": np.array([-1.0 if d[1] else 1.0 for d in draws], np.float32),
    "shift": np.array([d[2] for d in draws], np.int32),
    "contrast": np.array([d[3] for d in draws], np.float32),
    "brightness": np.array([d[4] for d in draws], np.float32),
  }
  apply = jax.jit(functools.partial(device.apply_face_augmentation, config=config))
  out = apply({"image": images, "landmarks": points, "label": np.arange(5)}, params)
  np.testing.assert_array_equal(out["label"], np.arange(5))  # other keys pass through
  np.testing.assert_array_equal(out["landmarks"][4], points[4])  # an identity warp leaves the points exactly
  for i, (degrees, flip, shift, contrast, brightness) in enumerate(draws):
    rng = ScriptedRng(uniform=[degrees, contrast, brightness], random=[0.25 if flip else 0.75], integers=[shift])
    image, moved = augment.augment_image_and_points(images[i], points[i], rng, config)
    np.testing.assert_allclose(out["image"][i], image, atol=1e-5)
    np.testing.assert_allclose(out["landmarks"][i], moved, atol=1e-5)


def test_a_bright_spot_at_a_landmark_lands_where_the_moved_landmark_says():
  config = face_config(crop_padding=4, flip=True, rotation_degrees=40.0)
  points = np.random.default_rng(2).uniform(0.25, 0.75, (16, 1, 2)).astype(np.float32)
  y, x = np.mgrid[0:48, 0:48]
  blobs = np.exp(-((x + 0.5 - points[:, :, 0, None] * 48) ** 2 + (y + 0.5 - points[:, :, 1, None] * 48) ** 2) / 4.0)
  out = jax.jit(functools.partial(device.augment_faces, config=config))(
    jax.random.key(0), {"image": blobs[..., None].astype(np.float32), "landmarks": points}
  )
  weights = np.asarray(out["image"][..., 0])
  weights = weights / weights.sum((1, 2), keepdims=True)
  centres = np.stack([(weights * (x + 0.5)).sum((1, 2)) / 48, (weights * (y + 0.5)).sum((1, 2)) / 48], axis=-1)
  np.testing.assert_allclose(out["landmarks"][:, 0], centres, atol=0.6 / 48)
  assert np.abs(np.asarray(out["landmarks"]) - points).max() > 2 / 48  # the points did move


# --- distributions -------------------------------------------------------------------------------------------
def test_draws_follow_the_config():
  config = face_config(
    crop_padding=3, flip=True, rotation_degrees=15.0, contrast=0.2, brightness=0.1, random_erasing=0.3
  )
  n = 4096
  params = jax.jit(
    functools.partial(device.draw_face_augmentation, batch_size=n, image_shape=(16, 16, 1), config=config)
  )(jax.random.key(3))
  params = jax.tree.map(np.asarray, params)
  tolerance = 5 * np.sqrt(n * 0.25)  # five binomial standard deviations at p = 0.5
  assert set(np.unique(params["flip"])) == {-1.0, 1.0}
  assert abs((params["flip"] < 0).sum() - n / 2) < tolerance
  degrees = np.rad2deg(params["angle"])
  assert np.abs(degrees).max() <= 15.0 + 1e-4
  counts, _ = np.histogram(degrees, bins=10, range=(-15, 15))
  assert np.abs(counts - n / 10).max() < 5 * np.sqrt(n / 10)  # uniform
  assert sorted(np.unique(params["shift"])) == list(range(-3, 4))  # every integer shift, on both axes
  for axis in range(2):
    assert np.abs(np.bincount(params["shift"][:, axis] + 3) - n / 7).max() < 5 * np.sqrt(n / 7)
  assert 0.8 <= params["contrast"].min() < 0.81 and 1.19 < params["contrast"].max() <= 1.2
  assert -0.1 <= params["brightness"].min() < -0.09 and 0.09 < params["brightness"].max() <= 0.1
  assert abs(params["erase"].sum() - 0.3 * n) < 5 * np.sqrt(n * 0.3 * 0.7)
  top, left, height, width = params["erase_box"].T
  assert (height > 0).all() and (height < 16).all() and (width > 0).all() and (width < 16).all()
  assert (top >= 0).all() and (top + height <= 16).all() and (left >= 0).all() and (left + width <= 16).all()
  area = height * width / 256
  assert area.min() >= 0.01 and area.max() <= 0.42  # 2-33% of the image before rounding the sides
  assert 0.12 < np.median(area) < 0.23
  ratio = np.log(height / width)
  assert ratio.min() > np.log(0.3) - 0.7 and ratio.max() < np.log(3.3) + 0.7 and abs(np.median(ratio)) < 0.15


def test_random_erasing_replaces_one_noise_rectangle_at_its_rate():
  config = face_config(random_erasing=0.4)
  n = 1024
  images = np.full((n, 12, 12, 1), 0.5, np.float32)
  out = np.asarray(
    jax.jit(functools.partial(device.augment_faces, config=config))(jax.random.key(4), {"image": images})["image"][
      ..., 0
    ]
  )
  changed = out != 0.5
  erased = changed.any((1, 2))
  assert abs(erased.sum() - 0.4 * n) < 5 * np.sqrt(n * 0.4 * 0.6)
  for mask in changed[erased][:64]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
    assert np.array_equal(cols, np.arange(cols[0], cols[-1] + 1))
    assert mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].mean() > 0.9  # filled, nothing outside the box
  assert 0 <= out.min() and out.max() <= 1


def test_everything_off_returns_the_input_exactly():
  rng = np.random.default_rng(5)
  batch = {
    "image": rng.random((4, 12, 10, 3)).astype(np.float32),
    "landmarks": rng.random((4, 6, 2)).astype(np.float32),
    "label": np.arange(4),
  }
  out = jax.jit(functools.partial(device.augment_faces, config=face_config()))(jax.random.key(5), batch)
  for key, value in batch.items():
    np.testing.assert_array_equal(out[key], value)


@pytest.fixture(scope="module")
def strong_augment():
  config = face_config(
    crop_padding=4, flip=True, rotation_degrees=30.0, contrast=0.5, brightness=0.3, random_erasing=1.0
  )
  return jax.jit(functools.partial(device.augment_faces, config=config))


def test_a_clips_frames_share_one_draw_and_stay_in_range(strong_augment):
  rng = np.random.default_rng(6)
  frames = rng.random((8, 1, 16, 16, 3)).astype(np.float32)
  clips = np.repeat(frames, 3, axis=1)
  out = np.asarray(strong_augment(jax.random.key(6), {"clip": clips})["clip"])
  for t in range(1, 3):
    np.testing.assert_array_equal(out[:, t], out[:, 0])  # identical frames stay identical: the same transform
  images = np.asarray(strong_augment(jax.random.key(6), {"image": frames[:, 0]})["image"])
  np.testing.assert_allclose(out[:, 0], images, atol=1e-6)  # and it is the draw an image batch gets
  assert 0 <= out.min() and out.max() <= 1 and not np.allclose(out[:, 0], frames[:, 0])


def test_same_key_same_output(strong_augment):
  batch = {"image": np.random.default_rng(7).random((8, 16, 16, 3)).astype(np.float32)}
  first, again = strong_augment(jax.random.key(7), batch), strong_augment(jax.random.key(7), batch)
  np.testing.assert_array_equal(first["image"], again["image"])
  assert not np.allclose(strong_augment(jax.random.key(8), batch)["image"], first["image"])


def test_validation_reuses_the_host_checks_and_checks_the_alphas():
  with pytest.raises(ValueError, match="mixup_alpha=-0.5"):
    device.validate(face_config(mixup_alpha=-0.5))
  with pytest.raises(ValueError, match="cutmix_alpha=-1"):
    device.mix_batch(
      jax.random.key(0), {"image": np.zeros((2, 4, 4, 1)), "label": np.zeros(2, int)}, face_config(cutmix_alpha=-1.0), 7
    )
  with pytest.raises(ValueError, match="contrast=1.5"):
    device.augment_faces(jax.random.key(0), {"image": np.zeros((2, 4, 4, 1), np.float32)}, face_config(contrast=1.5))
  with pytest.raises(ValueError, match="freq_masks=-1"):
    device.spec_augment(
      jax.random.key(0), np.zeros((1, 4, 3), np.float32), np.array([4]), speech_config(freq_masks=-1), spectral_dims=3
    )


# --- mixup and cutmix ----------------------------------------------------------------------------------------
def indexed_batch(batch_size=16, size=8):
  """Example i is the constant image i + 1 with label i, so a pixel tells which example it came from."""
  values = np.arange(1, batch_size + 1, dtype=np.float32)
  return {
    "image": np.broadcast_to(values[:, None, None, None], (batch_size, size, size, 3)).copy(),
    "label": np.arange(batch_size),
    "valid": np.ones(batch_size, np.float32),
  }


def test_mixup_blends_each_example_with_its_permuted_partner():
  batch = indexed_batch()
  out = jax.jit(functools.partial(device.mix_batch, config=face_config(mixup_alpha=0.4), num_classes=16))(
    jax.random.key(9), batch
  )
  partner, weight = np.asarray(out["mix_label"]), np.asarray(out["mix_weight"])
  assert sorted(partner) == list(range(16)) and not np.array_equal(partner, np.arange(16))
  assert ((0 <= weight) & (weight <= 1)).all()
  expected = weight * (np.arange(16) + 1) + (1 - weight) * (partner + 1)
  np.testing.assert_allclose(out["image"], np.broadcast_to(expected[:, None, None, None], (16, 8, 8, 3)), rtol=1e-6)
  np.testing.assert_array_equal(out["label"], batch["label"])


def test_cutmix_weight_is_the_kept_area():
  batch = indexed_batch(32, 12)
  mix = jax.jit(functools.partial(device.mix_batch, config=face_config(cutmix_alpha=1.0), num_classes=32))
  for seed in range(3):
    out = mix(jax.random.key(seed), batch)
    image, partner = np.asarray(out["image"][..., 0]), np.asarray(out["mix_label"])
    own = image == (np.arange(32) + 1)[:, None, None]
    from_partner = image == (partner + 1)[:, None, None]
    assert (own | from_partner).all()
    paired = partner != np.arange(32)  # a self-pair's pixels are all its own whatever the box
    np.testing.assert_allclose(np.asarray(out["mix_weight"])[paired], own.mean((1, 2))[paired], atol=1e-6)
    pasted = ~own[paired]
    for mask in pasted[pasted.any((1, 2))]:  # one rectangle
      rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
      assert mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all() and mask.sum() == len(rows) * len(cols)
    assert ((0 <= out["mix_weight"]) & (out["mix_weight"] <= 1)).all()


def test_both_alphas_choose_one_method_per_batch_and_zero_alphas_change_nothing():
  batch = indexed_batch()
  mix = jax.jit(
    functools.partial(device.mix_batch, config=face_config(mixup_alpha=1.0, cutmix_alpha=1.0), num_classes=16)
  )
  methods = set()
  for seed in range(16):
    out = mix(jax.random.key(seed), batch)
    image, partner = np.asarray(out["image"][..., 0]), np.asarray(out["mix_label"])
    own = image == (np.arange(16) + 1)[:, None, None]
    pure = own | (image == (partner + 1)[:, None, None])
    methods.add("cutmix" if pure.all() else "mixup")
    if not pure.all():  # mixup: every example is a uniform blend
      assert (image == image[:, :1, :1]).all()
  assert methods == {"cutmix", "mixup"}
  assert device.mix_batch(jax.random.key(0), batch, face_config(), 16) is batch


def test_mixed_targets_in_the_loss():
  logits = jax.random.normal(jax.random.key(10), (6, 5))
  label, partner = np.array([0, 1, 2, 3, 4, 0]), np.array([1, 1, 4, 0, 2, 3])
  plain_batch = {"label": label, "valid": np.ones(6, np.float32)}
  plain, plain_metrics = losses.classification_loss({"logits": logits}, plain_batch, label_smoothing=0.1)
  unmixed, unmixed_metrics = losses.classification_loss(
    {"logits": logits}, {**plain_batch, "mix_label": partner, "mix_weight": np.ones(6, np.float32)}, label_smoothing=0.1
  )
  np.testing.assert_allclose(unmixed, plain, rtol=1e-6)
  weight = np.array([1.0, 0.3, 0.5, 0.0, 0.8, 0.25], np.float32)
  mixed, metrics = losses.classification_loss(
    {"logits": logits}, {**plain_batch, "mix_label": partner, "mix_weight": weight}, label_smoothing=0.1
  )
  onehot = np.eye(5)
  targets = weight[:, None] * onehot[label] + (1 - weight[:, None]) * onehot[partner]
  targets = targets * 0.9 + 0.1 / 5
  expected = -(targets * np.asarray(jax.nn.log_softmax(logits))).sum(-1).mean()
  np.testing.assert_allclose(mixed, expected, rtol=1e-5)
  assert metrics["accuracy"] == plain_metrics["accuracy"] == unmixed_metrics["accuracy"]  # against `label`
  assert not np.isclose(mixed, plain)
  np.testing.assert_allclose(plain, optax.softmax_cross_entropy(logits, onehot[label] * 0.9 + 0.02).mean(), rtol=1e-5)


# --- SpecAugment ---------------------------------------------------------------------------------------------
def speech_batch(batch_size=64, frames=30, dims=20, seed=11):
  rng = np.random.default_rng(seed)
  features = rng.standard_normal((batch_size, frames, dims)).astype(np.float32)
  num_frames = rng.integers(1, frames + 1, batch_size).astype(np.int32)
  num_frames[:4] = (frames, 1, 5, 12)
  mean = np.stack([f[:n].mean(0) for f, n in zip(features, num_frames)])
  return features, num_frames, mean


def run_spec_augment(config, features, num_frames, spectral_dims, band_blocks=1, seed=0):
  augment_batch = jax.jit(
    functools.partial(device.spec_augment, config=config, spectral_dims=spectral_dims, band_blocks=band_blocks)
  )
  return np.asarray(augment_batch(jax.random.key(seed), features, num_frames))


def test_spec_augment_masks_valid_spectral_entries_with_the_mean():
  features, num_frames, mean = speech_batch()
  out = run_spec_augment(
    speech_config(time_masks=2, time_mask_frames=6, freq_masks=2, freq_mask_bins=4),
    features,
    num_frames,
    spectral_dims=15,
  )
  changed = out != features
  padded = np.arange(30)[None, :] >= num_frames[:, None]
  assert not changed[padded].any() and not changed[..., 15:].any()
  assert changed.any()
  np.testing.assert_allclose(out[changed], np.broadcast_to(mean[:, None, :], out.shape)[changed], atol=1e-5)


def test_spec_augment_time_masks_stay_within_their_width():
  features, num_frames, _ = speech_batch(batch_size=256)
  out = run_spec_augment(
    speech_config(time_masks=1, time_mask_frames=6, freq_masks=0), features, num_frames, spectral_dims=15
  )
  frames = (out != features).any(-1)
  widths = []
  for row, n, original, augmented in zip(frames, num_frames, features, out):
    span = np.flatnonzero(row)
    widths.append(len(span))
    if len(span):
      assert np.array_equal(span, np.arange(span[0], span[-1] + 1)) and span[-1] < n
      assert len(span) <= min(6, n) and (augmented[span, :15] != original[span, :15]).all()
  assert set(widths) == set(range(7))  # every width from 0 to time_mask_frames


def test_spec_augment_band_blocks_mask_the_same_coefficients_in_each_block():
  features, num_frames, _ = speech_batch(batch_size=128, dims=17)
  out = run_spec_augment(
    speech_config(time_masks=0, freq_masks=1, freq_mask_bins=3), features, num_frames, spectral_dims=15, band_blocks=3
  )
  widths = set()
  for original, augmented, n in zip(features, out, num_frames):
    changed = augmented != original
    assert not changed[n:].any() and not changed[:, 15:].any()
    dims = np.flatnonzero(changed.any(0))
    assert changed[:n, dims].all()  # a band covers every valid frame
    blocks = changed.any(0)[:15].reshape(3, 5)
    assert (blocks == blocks[0]).all()  # the same coefficients in each block of 5
    band = np.flatnonzero(blocks[0])
    widths.add(len(band))
    assert len(band) <= 3 and (len(band) == 0 or np.array_equal(band, np.arange(band[0], band[-1] + 1)))
  assert widths == {0, 1, 2, 3}
