"""Test setup: two logical CPU devices, configured before TensorFlow starts.

Single-replica code uses the first device; multi-replica tests mirror over both.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pytest  # noqa: E402
from mixmatch_tf.training.strategy import cpu_strategy, split_cpu  # noqa: E402

split_cpu(2)


@pytest.fixture(autouse=True)
def dtype_policy_left_alone():
    """No test, and no library call in it, leaves Keras' global dtype policy changed
    (a Trainer once left mixed_bfloat16 set, and every later test computed in bf16)."""
    import keras
    before = keras.mixed_precision.global_policy().name
    yield
    after = keras.mixed_precision.global_policy().name
    if after != before:
        keras.mixed_precision.set_global_policy(before)
        pytest.fail(f"Keras' global dtype policy was left {after!r} (was {before!r})")


@pytest.fixture(scope="session")
def one_replica():
    return cpu_strategy(1)


@pytest.fixture(scope="session")
def two_replicas():
    return cpu_strategy(2)


@pytest.fixture(scope="session")
def digits():
    from mixmatch_tf.data import load_digits
    return load_digits()


def run_script(args, timeout=600, env=None):
    """Runs a script of scripts/ in a fresh Python process; returns CompletedProcess."""
    import subprocess
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def checkpoint_weights(model_dir, prefix="state_"):
    """The method-state tensors of a run's latest checkpoint (optimizer slots left out)."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(model_dir, "ckpt")))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(prefix) and "OPTIMIZER" not in k}


def summary_tags(folder):
    """The tags of the TensorBoard events in ``folder``."""
    import tensorflow as tf
    tags = set()
    for name in tf.io.gfile.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(name):
            tags.update(v.tag for v in event.summary.value)
    return tags
