"""Every model by name: output shapes, exact sizes, stages."""
import numpy as np
import pytest

from mixmatch_tf.models import build_model, model_names, split_stages

SHAPES = {"small_cnn": (8, 8, 1), "wrn28_2": (32, 32, 3), "preact_resnet18": (32, 32, 3),
          "wrn28_large": (32, 32, 3), "mlp": (13,)}


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize("name", model_names())
def test_output_shape_and_stages(name):
    shape = SHAPES[name]
    model = build_model(name, shape, 7)
    out = model(np.zeros((3,) + shape, np.float32), training=False)
    assert out.shape == (3, 7) and out.dtype == "float32"
    x = np.zeros((2,) + shape, np.float32)
    for stage in split_stages(model):
        x = stage(x)
    assert x.shape == (2, 7)


def test_wrn28_2_size_matches_the_official_architecture():
    def block(cin, cout):  # BN, conv3x3+bias, BN, conv3x3+bias, [1x1 shortcut+bias]
        return (2 * cin + 9 * cin * cout + cout + 2 * cout + 9 * cout * cout + cout
                + (cin * cout + cout if cin != cout else 0))
    expected = 27 * 16 + 16
    cin = 16
    for width in (32, 64, 128):
        expected += block(cin, width) + 3 * block(width, width)
        cin = width
    expected += 2 * 128 + 128 * 10 + 10
    model = build_model("wrn28_2", (32, 32, 3), 10)
    assert trainable(model) == expected == 1469642


def test_preact_resnet18_size_matches_pytorch():
    def block(cin, cout, stride):  # BN, conv, BN, conv, [1x1 shortcut], no biases
        short = cin * cout if stride != 1 or cin != cout else 0
        return 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout + short
    expected = 27 * 64 + 2 * 64
    cin = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        expected += block(cin, width, stride) + block(width, width, 1)
        cin = width
    expected += 512 * 10 + 10
    assert trainable(build_model("preact_resnet18", (32, 32, 3), 10)) == expected == 11171274


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="valid: .*small_cnn"):
        build_model("resnet50", (32, 32, 3), 10)


def test_dropout_and_sync_bn_options():
    model = build_model("small_cnn", (8, 8, 1), 10, dropout=0.5, sync_bn=True)
    names = [layer.name for layer in model.layers[-1].layers]
    assert "head_dropout" in names
    assert any(getattr(layer, "synchronized", False) for layer in model.layers[0].layers)
