"""Every model by name: output shapes, exact sizes, stages."""
import numpy as np
import pytest

from mixmatch_tf.models import build_model, model_names, split_stages
from tests import model_sizes

SHAPES = {"small_cnn": (8, 8, 1), "wrn28_2": (32, 32, 3), "preact_resnet18": (32, 32, 3),
          "wrn28_large": (32, 32, 3), "mlp": (13,), "resnet50": (32, 32, 3),
          "resnet101": (32, 32, 3), "resnext101_32x4d": (32, 32, 3),
          "resnext101_64x4d": (32, 32, 3), "wrn28_10": (32, 32, 3),
          "densenet_bc_190": (32, 32, 3)}
# The big networks run here in reduced configurations of their own builders; their full
# size is built (not run) by test_full_size_network.
REDUCED = {"resnet50": dict(blocks=(1, 1, 1, 1), planes=(8, 16, 32, 64)),
           "resnet101": dict(blocks=(1, 1, 1, 1), planes=(8, 16, 32, 64)),
           "resnext101_32x4d": dict(blocks=(1, 1, 1, 1), planes=(16, 32, 64, 128)),
           "resnext101_64x4d": dict(blocks=(1, 1, 1, 1), planes=(16, 32, 64, 128)),
           "wrn28_10": dict(depth=10, widen_factor=2),
           "densenet_bc_190": dict(depth=10, growth_rate=8)}
STAGES = {"resnet50": ["stem", "layer1", "layer2", "layer3", "layer4", "head"],
          "wrn28_10": ["stem", "group1", "group2", "group3", "head"],
          "densenet_bc_190": ["stem", "block1", "block2", "block3", "head"]}
for _name in ("resnet101", "resnext101_32x4d", "resnext101_64x4d"):
    STAGES[_name] = STAGES["resnet50"]


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize("name", model_names())
def test_output_shape_and_stages(name):
    shape = SHAPES[name]
    model = build_model(name, shape, 7, **REDUCED.get(name, {}))
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


@pytest.mark.parametrize("name", sorted(model_sizes.FULL_SIZE))
def test_full_size_network(name):
    """Built at full size without running: weights (torchvision's count: kernels, BN
    gamma and beta, dense kernel and bias) = the formula = the reference's count."""
    shape, classes, exact, by_formula, paper_millions = model_sizes.FULL_SIZE[name]
    model = build_model(name, shape, classes)
    assert trainable(model) == by_formula == exact
    if paper_millions is not None:
        assert round(exact / 1e6, 1) == paper_millions
    assert [stage.name for stage in split_stages(model)] == STAGES[name]
    assert tuple(split_stages(model)[-1].output.shape) == (None, classes)
    moving = sum(int(np.prod(v.shape)) for v in model.non_trainable_variables)
    assert moving == sum(2 * int(layer.gamma.shape[0]) for stage in model.layers
                         for layer in stage.layers if hasattr(layer, "moving_mean"))


def test_cifar_networks_at_100_classes():
    # The classifier is the only part that changes (formula checked at 10 classes above).
    assert model_sizes.wide_resnet(28, 10, 100) == 36_536_884
    assert model_sizes.densenet_bc(190, 40, 100) == 25_821_620


def test_resnet_initialisation_of_goyal_et_al():
    """The last BN gamma of every block starts at 0 (the others at 1); the classifier is
    N(0, 0.01) with a zero bias; ``zero_init_residual=False`` gives gamma 1 everywhere."""
    from mixmatch_tf.models.resnet import bottleneck_resnet
    model = build_model("resnet50", (32, 32, 3), 1000, blocks=(2, 1, 1, 1), planes=(8, 16, 32, 64))
    gammas = {layer.name: layer.gamma.numpy() for stage in model.layers
              for layer in stage.layers if hasattr(layer, "gamma")}
    last = {n for n in gammas if n.endswith("_bn3")}
    assert len(last) == 5
    for n, g in gammas.items():
        np.testing.assert_array_equal(g, 0.0 if n in last else 1.0, err_msg=n)
    dense = model.layers[-1].get_layer("head_dense")
    assert abs(float(np.std(dense.kernel.numpy())) - 0.01) < 0.001
    np.testing.assert_array_equal(dense.bias.numpy(), 0.0)
    plain = bottleneck_resnet((32, 32, 3), 10, (1, 1, 1, 1), (8, 16, 32, 64),
                              zero_init_residual=False)
    bn3 = [layer for stage in plain.layers for layer in stage.layers if layer.name.endswith("_bn3")]
    assert bn3 and all(np.all(layer.gamma.numpy() == 1.0) for layer in bn3)


def test_wide_resnet_initialisation_of_the_official_code():
    """BN gamma U(0, 1) (Torch 7's default), beta 0; convs N(0, 2 / fan_in) (MSRinit);
    no conv biases; dense bias 0."""
    model = build_model("wrn28_10", (32, 32, 3), 10, depth=16, widen_factor=4)
    layers = [layer for stage in model.layers for layer in stage.layers]
    gammas = np.concatenate([l.gamma.numpy() for l in layers if hasattr(l, "gamma")])
    assert gammas.min() >= 0.0 and gammas.max() < 1.0 and 0.4 < gammas.mean() < 0.6
    convs = [l for l in layers if l.name.endswith("_conv1")]  # 3x3, 64 * 4 inputs in group 3
    kernel = convs[-1].kernel.numpy()
    assert not any(getattr(l, "use_bias", False) for l in layers if "conv" in l.name)
    np.testing.assert_allclose(np.std(kernel), np.sqrt(2.0 / (9 * kernel.shape[2])), rtol=0.05)
    np.testing.assert_array_equal(model.layers[-1].get_layer("head_dense").bias.numpy(), 0.0)


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="valid: .*small_cnn"):
        build_model("vgg16", (32, 32, 3), 10)


def test_dropout_and_sync_bn_options():
    model = build_model("small_cnn", (8, 8, 1), 10, dropout=0.5, sync_bn=True)
    names = [layer.name for layer in model.layers[-1].layers]
    assert "head_dropout" in names
    assert any(getattr(layer, "synchronized", False) for layer in model.layers[0].layers)


def test_imagenet_networks_need_their_total_stride_and_cifar_ones_run_small():
    from mixmatch_tf.models import ModelInputError, check_model_input
    for name in ("resnet50", "resnet101", "resnext101_32x4d", "resnext101_64x4d"):
        check_model_input(name, (32, 32, 3))
        with pytest.raises(ModelInputError, match="at least 32x32"):
            check_model_input(name, (31, 64, 3))
    check_model_input("densenet_bc_190", (4, 4, 3))  # two 2x2 poolings
    with pytest.raises(ModelInputError, match="at least 4x4"):
        check_model_input("densenet_bc_190", (3, 8, 3))
    check_model_input("wrn28_10", (1, 1, 3))
