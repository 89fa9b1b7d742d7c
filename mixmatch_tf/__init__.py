"""mixmatch_tf: mixup, MixMatch and DivideMix in TensorFlow 2 / Keras 3.

Imports flow one way: ``ops`` and ``models`` -> ``methods`` -> ``training`` and
``serving``; ``data`` -> ``training``; everything -> ``cli``, the programs. Only the
programs read absl flags (defined in ``mixmatch_tf.flags``, the repository's
``flags/``), and turn them into the config objects the rest of the package takes.
"""

import os

# oneDNN's kernels are TensorFlow's fastest convolutions on x86 CPUs, but TensorFlow
# turns them on by default only on CPUs with AVX512-VNNI, AVX512-BF16 or AMX; on an
# AVX2 + FMA CPU its default (Eigen) convolutions ran 1.3-2x slower (issue 14). The
# setting is read once, when TensorFlow is first imported: it holds when this
# package is imported first (the scripts do), and TF_ENABLE_ONEDNN_OPTS=0 keeps
# oneDNN off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
