"""mixmatch_tf: mixup, MixMatch and DivideMix in TensorFlow 2 / Keras 3.

Imports flow one way: ``ops`` and ``models`` -> ``methods`` -> ``training`` and
``serving``; ``data`` -> ``training``. Nothing in this package reads absl flags:
the launchers under ``scripts/`` turn flags into the config objects used here.
"""

__version__ = "0.1.0"
