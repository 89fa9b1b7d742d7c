r"""Builds Fashion-MNIST as an ``npz:`` data set from Debian's ``dataset-fashion-mnist``.

The second real image data set of the project (after the bundled digits): 60,000
training and 10,000 test images of 28x28 grey levels, 10 classes (Xiao et al.,
2017). Debian ships the original IDX files, so it can be built offline:

  sudo apt-get install dataset-fashion-mnist
  python scripts/make_fashion_mnist.py --out=data/fashion_mnist.npz
  python scripts/make_fashion_mnist.py --train_size=5000 --out=data/fashion_mnist_5k.npz

``--train_size`` keeps a class-balanced subset of the training images (drawn
with ``--seed``); the test set is always the full official one. The file holds
``x``, ``y``, ``x_test``, ``y_test`` and ``class_names`` (see ``load_npz``). It
is generated data: never commit it.
"""
import gzip
import os

import numpy as np
from absl import app, flags

from mixmatch_tf import cli

SOURCE = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("source", SOURCE, "Folder of the IDX files (*-idx3-ubyte.gz, "
                        "*-idx1-ubyte.gz).")
    flags.DEFINE_string("out", "data/fashion_mnist.npz", "Output .npz path.")
    flags.DEFINE_integer("train_size", None, "Keep a class-balanced subset of this many "
                         "training images; default: all 60,000.")
    flags.DEFINE_integer("seed", 0, "Seed of the subset.")


def read_idx(path):
    """The array of an IDX file (the MNIST format: magic, dims, big-endian uint8 data)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(source):
    """(x_train [60000, 28, 28, 1], y_train, x_test [10000, 28, 28, 1], y_test)."""
    out = []
    for part in ("train", "t10k"):
        names = (f"{part}-images-idx3-ubyte.gz", f"{part}-labels-idx1-ubyte.gz")
        paths = [os.path.join(source, n) for n in names]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"{missing[0]} does not exist; install Debian's "
                                    "dataset-fashion-mnist or pass --source")
        out += [read_idx(paths[0])[..., None], read_idx(paths[1]).astype(np.int64)]
    return tuple(out)


def main(argv):
    del argv
    from mixmatch_tf.data.dataset import stratified_split
    x, y, x_test, y_test = load(FLAGS.source)
    if FLAGS.train_size is not None:
        if not 10 <= FLAGS.train_size <= len(y):
            raise app.UsageError(f"--train_size must be in [10, {len(y)}], got {FLAGS.train_size}")
        _, keep = stratified_split(y, FLAGS.train_size, FLAGS.seed)  # sorted
        x, y = x[keep], y[keep]
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    tmp = FLAGS.out + ".tmp.npz"
    np.savez_compressed(tmp, x=x, y=y, x_test=x_test, y_test=y_test,
                        class_names=np.array(CLASS_NAMES))
    os.replace(tmp, FLAGS.out)
    print(f"{FLAGS.out}: {len(y)} training and {len(y_test)} test images, "
          f"{x.shape[1]}x{x.shape[2]}, classes {np.bincount(y).tolist()}")


if __name__ == "__main__":
    cli.launch(main, define_flags, __doc__)
