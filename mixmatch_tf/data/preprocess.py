"""The one normalisation shared by training, evaluation and export."""
import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Per-channel affine normalisation x -> (x - mean) / std of uint8 pixels.

    Attributes:
      mean: per-channel mean, on the 0-255 scale.
      std: per-channel standard deviation, on the 0-255 scale.
    """
    mean: tuple
    std: tuple

    @classmethod
    def symmetric(cls, channels):
        """Scales pixels to [-1, 1], as the official MixMatch code does."""
        return cls(mean=(127.5,) * channels, std=(127.5,) * channels)

    @classmethod
    def from_images(cls, images):
        """Per-channel statistics of uint8 images [N, H, W, C] (the training set)."""
        x = np.asarray(images, np.float64).reshape(-1, images.shape[-1])
        std = np.maximum(x.std(axis=0), 1.0)
        return cls(mean=tuple(float(v) for v in x.mean(axis=0)),
                   std=tuple(float(v) for v in std))

    @classmethod
    def named(cls, kind, images):
        """``per_channel`` (statistics of ``images``) or ``symmetric`` ([-1, 1])."""
        if kind == "per_channel":
            return cls.from_images(images)
        if kind == "symmetric":
            return cls.symmetric(images.shape[-1])
        raise ValueError(f"unknown normalization {kind!r}; valid: per_channel, symmetric")

    def to_dict(self):
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d):
        return cls(mean=tuple(d["mean"]), std=tuple(d["std"]))


def normalize(images, norm):
    """uint8 (or float) pixels -> float32 (x - mean) / std, channels last."""
    x = tf.cast(images, tf.float32)
    mean = tf.constant(norm.mean, tf.float32)
    std = tf.constant(norm.std, tf.float32)
    return (x - mean) / std
