"""The kernels the train steps run on: the fused training-mode batch norm gives Keras's
numbers; oneDNN is on when the package is imported first."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from mixmatch_tf.models import build_model
from mixmatch_tf.models.batch_norm import BatchNormalization


def graph_ops(fn, *args):
    return {op.type for op in tf.function(fn).get_concrete_function(*args).graph.get_operations()}


@pytest.mark.parametrize("epsilon,momentum,shape", [
    (1e-5, 0.9, (8, 6, 5, 16)),    # PreAct ResNet-18's (epsilon under cuDNN's 1.001e-5 floor)
    (1e-3, 0.999, (4, 3, 3, 7)),   # WRN-28-2's
    (1e-3, 0.0, (1, 1, 1, 3)),     # one value per channel: zero variance
])
def test_fused_training_step_equals_keras(epsilon, momentum, shape):
    rng = np.random.RandomState(0)
    x = tf.constant(rng.randn(*shape).astype(np.float32) * 3.0 + 1.0)
    upstream = tf.constant(rng.randn(*shape).astype(np.float32))
    gamma = rng.rand(shape[-1]).astype(np.float32) + 0.5
    beta = rng.randn(shape[-1]).astype(np.float32)
    results = []
    for layer in (keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon),
                  BatchNormalization(momentum=momentum, epsilon=epsilon)):
        layer.build(shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        layer.moving_mean.assign(beta)
        layer.moving_variance.assign(gamma)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y] + grads + [layer.moving_mean, layer.moving_variance])
    names = ("y", "dx", "dgamma", "dbeta", "moving_mean", "moving_variance")
    for name, keras_value, fused_value in zip(names, *results):
        np.testing.assert_allclose(fused_value.numpy(), keras_value.numpy(), rtol=2e-5, atol=2e-5,
                                   err_msg=name)


def test_training_runs_the_fused_kernel_and_inference_keras_code():
    layer = BatchNormalization()
    x = tf.zeros([2, 4, 4, 3])
    layer.build(x.shape)
    assert "FusedBatchNormV3" in graph_ops(lambda v: layer(v, training=True), x)
    assert "FusedBatchNormV3" not in graph_ops(lambda v: layer(v, training=False), x)
    plain = keras.layers.BatchNormalization()
    plain.build(x.shape)
    keras_ops = graph_ops(lambda v: plain(v, training=True), x)
    assert "FusedBatchNormV3" not in keras_ops and "SquaredDifference" in keras_ops


def test_synchronized_and_other_ranks_keep_keras_code():
    sync = BatchNormalization(synchronized=True)
    sync.build([2, 4, 4, 3])
    assert "FusedBatchNormV3" not in graph_ops(lambda v: sync(v, training=True),
                                               tf.zeros([2, 4, 4, 3]))
    flat = BatchNormalization()
    flat.build([5, 3])
    assert "FusedBatchNormV3" not in graph_ops(lambda v: flat(v, training=True), tf.zeros([5, 3]))


@pytest.mark.parametrize("name", ["wrn28_2", "preact_resnet18"])
def test_the_paper_models_use_the_fused_layer(name):
    model = build_model(name, (32, 32, 3), 10)
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    assert layers and all(isinstance(layer, BatchNormalization) for layer in layers)


@pytest.mark.parametrize("setting,expected", [(None, "True"), ("0", "False")])
def test_onednn_is_on_when_the_package_is_imported_first(setting, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = ("import mixmatch_tf, tensorflow\n"
            "from tensorflow.python.util import _pywrap_util_port as port\n"
            "print(port.IsMklEnabled())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == expected
