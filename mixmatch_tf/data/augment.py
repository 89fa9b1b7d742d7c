"""Stateless, per-example image augmentation for whole batches.

The random crop pads each side by ``pad`` pixels and crops back at a random
offset. How it pads is the method's (each follows its official code):
``"reflect"`` mirrors the border (MixMatch's ``libml/data.py`` augment_shift,
``tf.pad(mode='REFLECT')``), ``"zeros"`` pads with black (torchvision's
``RandomCrop(32, padding=4)``, fill 0, applied before ``ToTensor``/``Normalize``
in mixup-cifar10's ``train.py`` and DivideMix's ``dataloader_cifar.py``). The ops run on the uint8 pixels,
before normalisation, so a zero pad is black in pixel space as in torchvision.

The randomness (crop offsets and flip decisions) is drawn apart from the
deterministic transform, so the transform can be tested with hand-picked values
and the pipeline draws the same augmentations after a resume.

**Policies.** How a data set's training images are cropped and flipped is named
(``POLICIES``): a property of the data set (its loader's default) or of
``--augmentation``, never of where its images are kept. An in-memory source
(``pipeline.ArraySource``) and a streamed one (``streaming.StreamSource``) draw
row ``r``, view ``v`` of a step's global batch of ``B`` rows from the same seeds
(``pad_crop_draws``, ``row_seed``), so the same folder gives the same augmented
pixels read either way.
"""
import math

import tensorflow as tf


def sample_crop_flip(seed, batch_size, pad, flip):
    """Draws one crop offset and one flip decision per example.

    Args:
      seed: stateless seed, int tensor [2].
      batch_size: int or scalar tensor B.
      pad: int, the padding on each side; offsets are uniform in [0, 2 * pad].
      flip: bool, whether horizontal flips are allowed at all.

    Returns:
      (offsets int32 [B, 2] as (row, column), flips bool [B]).
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    offsets = tf.random.stateless_uniform(
        [batch_size, 2], seeds[0], minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    if flip:
        flips = tf.random.stateless_uniform([batch_size], seeds[1]) < 0.5
    else:
        flips = tf.zeros([batch_size], tf.bool)
    return offsets, flips


PADDINGS = {"reflect": "REFLECT", "zeros": "CONSTANT"}


def check_padding(padding):
    if padding not in PADDINGS:
        raise ValueError(f"crop padding must be one of {', '.join(PADDINGS)}, got {padding!r}")


def crop_flip(images, offsets, flips, pad, padding):
    """Pads each image by ``pad``, crops it back at ``offsets``, flips it.

    Args:
      images: [B, H, W, C] tensor of any dtype (uint8 pixels in the pipeline).
      offsets: int32 [B, 2], top-left corner of each crop in the padded image.
      flips: bool [B], mirror the crop left-right.
      pad: int >= 0; with ``"reflect"`` smaller than H and W (reflection needs that).
      padding: ``"reflect"`` (mirror the border without repeating it) or
        ``"zeros"`` (pad with 0).

    Returns:
      [B, H, W, C] tensor of the dtype of ``images``.
    """
    check_padding(padding)
    height, width = images.shape[1], images.shape[2]
    if pad:
        images = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]],
                        mode=PADDINGS[padding])
    rows = offsets[:, 0:1] + tf.range(height)[None, :]
    cols = tf.where(flips[:, None],
                    offsets[:, 1:2] + tf.range(width - 1, -1, -1)[None, :],
                    offsets[:, 1:2] + tf.range(width)[None, :])
    out = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


# ----------------------------------------------------------------- ImageNet-style
# Goyal et al. 2017 train ResNets with the "scale and aspect ratio" augmentation of
# Szegedy et al. 2015 as fb.resnet.torch and torchvision implement it
# (``RandomResizedCrop``): a crop of 8%-100% of the image's area whose aspect ratio
# is log-uniform in [3/4, 4/3], resized to the network's input, and a horizontal
# flip; evaluation takes the central crop of the image resized to 256/224 of that
# input on its shorter side.
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
CROP_ATTEMPTS = 10
EVAL_RESIZE_RATIO = 256.0 / 224.0


def sample_resized_crop_draws(seed, attempts=CROP_ATTEMPTS):
    """The uniform draws of one random-resized crop: float32 [attempts, 4] in [0, 1).

    Columns: area fraction, log aspect ratio, row offset, column offset (each
    mapped to its range by ``resized_crop_box``). Drawn apart from the box so the
    box can be tested with hand-picked draws.
    """
    return tf.random.stateless_uniform([attempts, 4], seed)


def resized_crop_box(height, width, draws, scale=CROP_SCALE, ratio=CROP_RATIO):
    """torchvision's ``RandomResizedCrop.get_params`` with the given draws.

    Attempt k takes the area ``(s0 + u0 (s1 - s0)) H W`` and the aspect ratio
    ``exp(log r0 + u1 (log r1 - log r0))``, so ``w = round(sqrt(area * ratio))``
    and ``h = round(sqrt(area / ratio))`` (halves to even, as Python's round); the
    first attempt whose box fits the image wins and is placed at row
    ``floor(u2 (H - h + 1))``, column ``floor(u3 (W - w + 1))``. When none fits, the
    central crop of the whole image with its aspect ratio clamped to ``ratio``.

    Args:
      height, width: int scalars (tensors or ints), the image's size.
      draws: float [attempts, 4] from ``sample_resized_crop_draws``.

    Returns:
      int32 [4]: top, left, crop height, crop width.
    """
    h_img = tf.cast(height, tf.float32)
    w_img = tf.cast(width, tf.float32)
    area = h_img * w_img * (scale[0] + draws[:, 0] * (scale[1] - scale[0]))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = tf.exp(log_lo + draws[:, 1] * (log_hi - log_lo))
    w = tf.round(tf.sqrt(area * aspect))
    h = tf.round(tf.sqrt(area / aspect))
    fits = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)
    first = tf.argmax(tf.cast(fits, tf.int32))  # the first attempt that fits
    top = tf.floor(draws[first, 2] * (h_img - h[first] + 1))
    left = tf.floor(draws[first, 3] * (w_img - w[first] + 1))
    # None fits: the central crop, aspect ratio clamped to [r0, r1].
    in_ratio = w_img / h_img
    fw = tf.where(in_ratio < ratio[0], w_img,
                  tf.where(in_ratio > ratio[1], tf.round(h_img * ratio[1]), w_img))
    fh = tf.where(in_ratio < ratio[0], tf.round(w_img / ratio[0]), h_img)
    ftop = tf.floor((h_img - fh) / 2)
    fleft = tf.floor((w_img - fw) / 2)
    any_fits = tf.reduce_any(fits)
    box = tf.where(any_fits, tf.stack([top, left, h[first], w[first]]),
                   tf.stack([ftop, fleft, fh, fw]))
    return tf.cast(box, tf.int32)


def eval_resize_shape(height, width, size, ratio=EVAL_RESIZE_RATIO):
    """(rows, columns) of an image resized to ``round(size * ratio)`` on its shorter side.

    As torchvision's ``Resize(256)``: the shorter side becomes exactly that
    length, the longer one ``int(length * long / short)`` (truncated).
    """
    short_target = int(round(size * ratio))
    h = tf.cast(height, tf.float64)
    w = tf.cast(width, tf.float64)
    short = tf.minimum(h, w)
    long_side = tf.cast(tf.floor(short_target * tf.maximum(h, w) / short), tf.int32)
    rows = tf.where(h <= w, short_target, long_side)
    cols = tf.where(h <= w, long_side, short_target)
    return rows, cols


def central_crop_offsets(rows, cols, size):
    """torchvision's ``CenterCrop``: top ``round((rows - size) / 2)``, left likewise."""
    top = tf.cast(tf.round(tf.cast(rows - size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(cols - size, tf.float32) / 2.0), tf.int32)
    return top, left


def resize_uint8(image, rows, cols):
    """Bilinear resize with antialiasing (PIL's, torchvision's default), rounded to uint8."""
    resized = tf.image.resize(image, tf.stack([rows, cols]), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


# How an image whose size is not the data's is brought to it, in evaluation and by
# the served model: ``stretch`` resizes it to H x W (aspect ratio not kept; images
# of the data's size are left as they are), ``central_crop`` (square S x S, images
# of any size: ImageNet) takes ``eval_central_crop``.
RESIZE_STRETCH = "stretch"
RESIZE_CENTRAL_CROP = "central_crop"
RESIZES = (RESIZE_STRETCH, RESIZE_CENTRAL_CROP)


def fit_image(image, rows, cols, resize):
    """A decoded image [h, w, C] brought to uint8 [rows, cols, C] as ``resize`` says."""
    if resize == RESIZE_CENTRAL_CROP:
        return eval_central_crop(image, rows)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], [rows, cols]))
    return tf.cond(same, lambda: image, lambda: resize_uint8(image, rows, cols))


def eval_central_crop(image, size):
    """Evaluation's view of a decoded image [h, w, C] of any size: uint8 [size, size, C].

    The shorter side is resized to ``round(size * 256 / 224)`` (``eval_resize_shape``,
    ``resize_uint8``) and the central ``size`` square is taken
    (``central_crop_offsets``). Streamed evaluation and the served model of a
    streamed run both call this, so they see the same pixels.
    """
    rows, cols = eval_resize_shape(tf.shape(image)[0], tf.shape(image)[1], size)
    image = resize_uint8(image, rows, cols)
    top, left = central_crop_offsets(rows, cols, size)
    return image[top:top + size, left:left + size]


# ------------------------------------------------------------------- policies
PAD_CROP = "pad_crop"                    # pad_for(H) on each side, random crop back to H x W
PAD_CROP_FLIP = "pad_crop_flip"          # ... and a random horizontal flip (CIFAR, STL-10)
RESIZED_CROP_FLIP = "resized_crop_flip"  # random-resized crop to H x W and a flip (ImageNet)
NO_AUGMENTATION = "none"                 # the images as they are (tabular data)
POLICIES = (PAD_CROP, PAD_CROP_FLIP, RESIZED_CROP_FLIP, NO_AUGMENTATION)
AUTO = "auto"  # --augmentation: the data set's own policy


def check_policy(policy, where="--augmentation"):
    if policy not in POLICIES:
        raise ValueError(f"{where}={policy!r}: must be one of {', '.join(POLICIES)}")
    return policy


def pad_for(height):
    """Padding of the pad-and-crop policies: an eighth of the height (4 pixels of
    CIFAR's 32), at least 1."""
    return max(1, int(height) // 8)


def flips(policy):
    return policy in (PAD_CROP_FLIP, RESIZED_CROP_FLIP)


def pad_crop_draws(step_seed, view, batch_size, height, policy):
    """(offsets [B, 2], flips [B]) of view ``view`` of a step's global batch under a
    pad-and-crop policy: row r of the batch takes row r of each."""
    seed = tf.random.experimental.stateless_fold_in(step_seed, view)
    return sample_crop_flip(seed, batch_size, pad_for(height), flips(policy))


def row_seed(step_seed, row, view=None):
    """The seed of row ``row`` (and view ``view``) of a step's batch: a
    random-resized crop is drawn per image."""
    seed = tf.random.experimental.stateless_fold_in(step_seed, tf.cast(row, tf.int64))
    return seed if view is None else tf.random.experimental.stateless_fold_in(seed, view)


def resized_crop_plan(seed, height, width):
    """(box int32 [4]: top, left, height, width; flip seed) of a random-resized crop
    of an image of ``height`` x ``width``, from its row seed."""
    draw_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return resized_crop_box(height, width, sample_resized_crop_draws(draw_seed)), flip_seed


def finish_resized_crop(crop, flip_seed, rows, cols):
    """A crop resized to ``rows`` x ``cols`` (``resize_uint8``), flipped with
    probability 1/2: uint8 [rows, cols, C]."""
    out = resize_uint8(crop, rows, cols)
    return tf.cond(tf.random.stateless_uniform([], flip_seed) < 0.5,
                   lambda: tf.reverse(out, axis=[1]), lambda: out)


def resized_crop_flip(image, seed, rows, cols):
    """Random-resized crop and flip of a decoded image [h, w, C] of any size."""
    shape = tf.shape(image)
    box, flip_seed = resized_crop_plan(seed, shape[0], shape[1])
    crop = image[box[0]:box[0] + box[2], box[1]:box[1] + box[3]]
    return finish_resized_crop(crop, flip_seed, rows, cols)


def augment_views(pixels, step_seed, policy, padding, views=None):
    """A step's global batch augmented under ``policy`` (the in-memory path).

    Args:
      pixels: uint8 [B, H, W, C], the whole global batch in row order.
      step_seed: the stream's seed of this step.
      policy: one of ``POLICIES``.
      padding: the method's ``crop_padding`` (pad-and-crop policies).
      views: None for one view ([B, H, W, C]) or K ([B, K, H, W, C]).
    """
    check_policy(policy)
    height, width = pixels.shape[1], pixels.shape[2]

    def one_view(k):
        if policy == NO_AUGMENTATION:
            return pixels
        if policy == RESIZED_CROP_FLIP:
            rows = tf.range(tf.shape(pixels, out_type=tf.int64)[0])
            return tf.map_fn(
                lambda a: resized_crop_flip(a[0], row_seed(step_seed, a[1], k), height, width),
                (pixels, rows), fn_output_signature=tf.TensorSpec(pixels.shape[1:], pixels.dtype))
        offsets, flip = pad_crop_draws(step_seed, 0 if k is None else k, tf.shape(pixels)[0],
                                       height, policy)
        return crop_flip(pixels, offsets, flip, pad_for(height), padding)

    if views is None:
        return one_view(None)
    return tf.stack([one_view(k) for k in range(views)], axis=1)


def augment_row(image, step_seed, row, batch_size, policy, padding, view=None):
    """Row ``row`` of a step's global batch of ``batch_size`` augmented under
    ``policy``: the pixels ``augment_views`` gives that row (the streamed path,
    which augments one decoded image at a time; random-resized crops of
    streamed JPEGs decode the crop only, see ``streaming``).

    Args:
      image: uint8 [H, W, C], the row's image at the data's size.
    """
    check_policy(policy)
    height, width = image.shape[0], image.shape[1]
    if policy == NO_AUGMENTATION:
        return image
    if policy == RESIZED_CROP_FLIP:
        return resized_crop_flip(image, row_seed(step_seed, row, view), height, width)
    offsets, flip = pad_crop_draws(step_seed, 0 if view is None else view, batch_size, height,
                                   policy)
    out = crop_flip(image[None], offsets[row:row + 1], flip[row:row + 1], pad_for(height),
                    padding)
    return out[0]
