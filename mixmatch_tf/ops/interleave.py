"""The batch-norm interleave of the official MixMatch code.

MixMatch forwards a labeled batch and K unlabeled batches. To give each forward
pass representative batch-norm statistics, group i of batch 0 is swapped with
group i of batch i; applying the same swap to the outputs restores the order.

References:
  google-research/mixmatch ``libml/layers.py`` (interleave_offsets, interleave).
"""
import tensorflow as tf


def interleave_offsets(batch, nu):
    """Group boundaries splitting ``batch`` rows into nu + 1 near-equal groups
    (the last groups take the remainder)."""
    groups = [batch // (nu + 1)] * (nu + 1)
    for x in range(batch - sum(groups)):
        groups[-x - 1] += 1
    offsets = [0]
    for g in groups:
        offsets.append(offsets[-1] + g)
    return offsets


def interleave(xy, batch):
    """Swaps group i of ``xy[0]`` with group i of ``xy[i]``; an involution.

    Args:
      xy: list of nu + 1 tensors, each with ``batch`` rows.
      batch: rows per tensor (static int).

    Returns:
      A list of nu + 1 tensors of the same shapes.
    """
    nu = len(xy) - 1
    offsets = interleave_offsets(batch, nu)
    parts = [[v[offsets[p]:offsets[p + 1]] for p in range(nu + 1)] for v in xy]
    for i in range(1, nu + 1):
        parts[0][i], parts[i][i] = parts[i][i], parts[0][i]
    return [tf.concat(p, axis=0) for p in parts]
