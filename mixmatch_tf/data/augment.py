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
"""
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


def augment_batch(images, seed, pad, flip, padding):
    """Random pad-and-crop (+ optional horizontal flip) per example; ``padding`` as in crop_flip."""
    offsets, flips = sample_crop_flip(seed, tf.shape(images)[0], pad, flip)
    return crop_flip(images, offsets, flips, pad, padding)
