"""Every shipped network against an independent NumPy reference of its definition.

The references (``tests/reference_nets.py``) follow the official code (PyTorch
PreAct ResNet-18 of DivideMix / mixup-cifar10, TF1 WRN-28 of MixMatch) in the
official layout and parameter names. Their random weights, including random
batch-norm gamma, beta and moving statistics, are copied into our Keras model
through an explicit official-name -> our-layer map that must cover every variable
on both sides. Then:

* inference: logits agree to 1e-4 relative (max |ours - ref| <= 1e-4 max |ref|);
* training mode: logits with batch statistics agree to 1e-4 relative, and so do the
  moving mean and variance of every batch-norm layer after that one pass, where the
  moving variance follows Keras's rule (biased batch variance). The official
  frameworks average in the unbiased batch variance instead; that difference is
  pinned by ``test_keras_running_variance_uses_the_biased_batch_variance``.

Every registered model must have a case here, so a model added later cannot skip
parity. The big networks (ResNet-50/101, ResNeXt-101, WRN-28-10, DenseNet-BC-190)
run as reduced configurations of the very function their name builds (fewer
blocks, narrower stages, smaller inputs; ``Case.kwargs``) to keep the suite fast;
a reduced case is only accepted for a network whose full size is pinned by
``tests/test_models.py`` (``tests/model_sizes.py``).
"""
import dataclasses
from typing import Callable

import keras
import numpy as np
import pytest

from mixmatch_tf.models import build_model, model_names
from mixmatch_tf.models.registry import batch_norm
from mixmatch_tf.models.wrn_mixmatch import default_scales
from tests import model_sizes
from tests import reference_nets as ref

REL = 1e-4


def preact_layer_map():
    """``state_dict`` module names of the official ResNet18 -> our layer names."""
    mapping = {"conv1": "stem_conv", "bn1": "stem_bn", "linear": "head_dense"}
    for layer in range(1, 5):
        for index in range(2):
            ours = f"l{layer}b{index + 1}"
            for part in ("bn1", "conv1", "bn2", "conv2"):
                mapping[f"layer{layer}.{index}.{part}"] = f"{ours}_{part}"
        if layer > 1:  # stride 2 and new width: the first block of layers 2-4 projects
            mapping[f"layer{layer}.0.shortcut.0"] = f"l{layer}b1_shortcut"
    return mapping


def wrn_layer_map(filters, scales, repeat=4):
    """``tf.layers`` names of the official classifier -> our layer names.

    Our layers are listed in the order the official code creates them (per block:
    bn, conv1, bn, conv2, then the 1x1 shortcut when the width changes); TF1 numbers
    unnamed layers of each kind in that order.
    """
    ours, cin = ["stem_conv"], 16
    for scale in range(1, scales + 1):
        width = filters << (scale - 1)
        for block in range(1, repeat + 1):
            name = f"s{scale}b{block}"
            ours += [f"{name}_a_bn", f"{name}_conv1", f"{name}_b_bn", f"{name}_conv2"]
            if cin != width:
                ours.append(f"{name}_shortcut")
            cin = width
    ours += ["head_bn", "head_dense"]
    counts, mapping = {}, {}
    for name in ours:
        kind = ("batch_normalization" if name.endswith("_bn") else
                "dense" if name.endswith("_dense") else "conv2d")
        i = counts.get(kind, 0)
        counts[kind] = i + 1
        mapping[f"classify/{kind}" + (f"_{i}" if i else "")] = name
    return mapping


def bottleneck_layer_map(blocks):
    """torchvision ``state_dict`` module names of ``ResNet(Bottleneck, blocks)`` -> ours."""
    mapping = {"conv1": "stem_conv", "bn1": "stem_bn", "fc": "head_dense"}
    for i, n in enumerate(blocks, start=1):
        for j in range(n):
            ours = f"l{i}b{j + 1}"
            for part in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3"):
                mapping[f"layer{i}.{j}.{part}"] = f"{ours}_{part}"
        # The first block of every stage changes the width (stem planes[0] -> 4 planes[0],
        # then 4 planes[i-1] -> 4 planes[i]), so it projects.
        mapping[f"layer{i}.0.downsample.0"] = f"l{i}b1_down_conv"
        mapping[f"layer{i}.0.downsample.1"] = f"l{i}b1_down_bn"
    return mapping


def wide_resnet_layer_map(depth, width):
    """Official flat parameter names of ``resnet(depth, width)`` -> our layer names."""
    mapping = {"conv0": "stem_conv", "bn": "head_bn", "fc": "head_dense"}
    ni = 16
    for g, base_width in enumerate((16, 32, 64)):
        no = base_width * width
        for b in range((depth - 4) // 6):
            official, ours = f"group{g}.block{b}", f"g{g + 1}b{b + 1}"
            for part, layer in (("bn0", "0_bn"), ("conv0", "conv0"), ("bn1", "1_bn"),
                                ("conv1", "conv1")):
                mapping[f"{official}.{part}"] = f"{ours}_{layer}"
            if ni != no:
                mapping[f"{official}.convdim"] = f"{ours}_convdim"
            ni = no
    return mapping


def densenet_layer_map(depth):
    """``DenseNetBC``'s (torchvision-style) names -> our layer names."""
    mapping = {"features.conv0": "stem_conv", "features.norm_final": "head_bn",
               "classifier": "head_dense"}
    for b in range(1, 4):
        for i in range(1, (depth - 4) // 6 + 1):
            official, ours = f"features.denseblock{b}.denselayer{i}", f"b{b}l{i}"
            for part, layer in (("norm1", "1_bn"), ("conv1", "1_conv"), ("norm2", "2_bn"),
                                ("conv2", "2_conv")):
                mapping[f"{official}.{part}"] = f"{ours}_{layer}"
        if b < 3:
            mapping[f"features.transition{b}.norm"] = f"t{b}_bn"
            mapping[f"features.transition{b}.conv"] = f"t{b}_conv"
    return mapping


def identity_map(names):
    return {name: name for name in names}


@dataclasses.dataclass(frozen=True)
class Case:
    input_shape: tuple
    num_classes: int
    reference: Callable  # () -> reference network
    layer_map: dict
    layout: str  # "torch" (NCHW, OIHW, state_dict names) or "tf" (NHWC, HWIO, .../kernel)
    stages: int  # expected len(model.layers): stem/blocks + head
    # Size arguments of the registered function for a reduced configuration (only for
    # networks whose full size is pinned in tests/model_sizes.py).
    kwargs: dict = dataclasses.field(default_factory=dict)


# Reduced configurations of the big networks: every block kind appears (projecting and
# identity shortcuts, grouped convolutions, odd map sizes, a compression that rounds down).
RESNET50_SMALL = dict(blocks=(2, 1, 1, 1), planes=(8, 16, 32, 64))
RESNET101_SMALL = dict(blocks=(1, 1, 2, 1), planes=(8, 16, 32, 64))
RESNEXT32_SMALL = dict(blocks=(1, 2, 1, 1), planes=(16, 32, 64, 128), groups=4, width_per_group=16)
RESNEXT64_SMALL = dict(blocks=(1, 1, 1, 2), planes=(16, 32, 64, 128), groups=8, width_per_group=8)


CASES = {
    # 32x32: the official avg_pool2d(4) needs layer4 to be 4x4 (inputs of 25-32 pixels).
    "preact_resnet18": Case((32, 32, 3), 10, lambda: ref.PreActResNet18(10, seed=1),
                            preact_layer_map(), "torch", 6),
    # The paper's configuration: 32x32, three stages.
    "wrn28_2": Case((32, 32, 3), 10,
                    lambda: ref.MixMatchResNet(10, 32, ref.official_scales(32), seed=2),
                    wrn_layer_map(32, 3), "tf", 5),
    # 135 filters at 16x16 (two stages, 135 and 270 channels) to stay fast.
    "wrn28_large": Case((16, 16, 3), 10,
                        lambda: ref.MixMatchResNet(10, 135, ref.official_scales(16), seed=3),
                        wrn_layer_map(135, 2), "tf", 4),
    "small_cnn": Case((8, 8, 1), 10, lambda: ref.SmallCNN(10, seed=4),
                      identity_map(["b1a_conv", "b1a_bn", "b1b_conv", "b1b_bn", "b2a_conv",
                                    "b2a_bn", "b2b_conv", "b2b_bn", "head_dense"]), "tf", 3),
    "mlp": Case((13,), 7, lambda: ref.MLP(7, seed=5),
                identity_map(["dense1", "dense2", "head_dense"]), "tf", 3),
    # 64x64: maps of 32, 16 (stem), 16, 8, 4, 2; even sizes, where Keras's "same" would
    # pad the stride-2 convolutions and the max pool differently from PyTorch.
    "resnet50": Case((64, 64, 3), 10, lambda: ref.BottleneckResNet(
        RESNET50_SMALL["blocks"], 10, planes=RESNET50_SMALL["planes"], seed=6),
        bottleneck_layer_map(RESNET50_SMALL["blocks"]), "torch", 6, RESNET50_SMALL),
    # 36x36: odd maps (9, 5, 3) after the max pool and the stride-2 stages.
    "resnet101": Case((36, 36, 3), 10, lambda: ref.BottleneckResNet(
        RESNET101_SMALL["blocks"], 10, planes=RESNET101_SMALL["planes"], seed=7),
        bottleneck_layer_map(RESNET101_SMALL["blocks"]), "torch", 6, RESNET101_SMALL),
    # Cardinality 4 of 4-channel groups, and 8 of 2-channel groups.
    "resnext101_32x4d": Case((48, 48, 3), 10, lambda: ref.BottleneckResNet(
        RESNEXT32_SMALL["blocks"], 10, groups=4, width_per_group=16,
        planes=RESNEXT32_SMALL["planes"], seed=8),
        bottleneck_layer_map(RESNEXT32_SMALL["blocks"]), "torch", 6, RESNEXT32_SMALL),
    "resnext101_64x4d": Case((40, 40, 3), 10, lambda: ref.BottleneckResNet(
        RESNEXT64_SMALL["blocks"], 10, groups=8, width_per_group=8,
        planes=RESNEXT64_SMALL["planes"], seed=9),
        bottleneck_layer_map(RESNEXT64_SMALL["blocks"]), "torch", 6, RESNEXT64_SMALL),
    # WRN-16-2: two blocks per group, so both the projecting and the identity block run.
    "wrn28_10": Case((32, 32, 3), 10, lambda: ref.WideResNet(16, 2, 10, seed=10),
                     wide_resnet_layer_map(16, 2), "torch", 5, dict(depth=16, widen_factor=2)),
    # Depth 22 (3 layers a block), growth 5: 25 and 27 channels compress to 12 and 13.
    "densenet_bc_190": Case((32, 32, 3), 10, lambda: ref.DenseNetBC(22, 5, 10, seed=11),
                            densenet_layer_map(22), "torch", 5, dict(depth=22, growth_rate=5)),
}

BATCH = 2

TORCH_BN = ("weight", "bias", "running_mean", "running_var")
TF_BN = ("gamma", "beta", "moving_mean", "moving_variance")


def case_for(name):
    assert name in CASES, (f"model {name!r} is registered but has no parity case in "
                           f"tests/test_parity.py: add a reference of its definition")
    return CASES[name]


def layers_by_name(model):
    found = {}

    def walk(container):
        for layer in container.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
            elif not isinstance(layer, keras.layers.InputLayer):
                assert layer.name not in found, f"layer name {layer.name!r} is not unique"
                found[layer.name] = layer
    walk(model)
    return found


def copy_weights(params, layer_map, layout, model):
    """Copies official parameters into our layers; every variable on both sides is used once."""
    layers = layers_by_name(model)
    sep = "." if layout == "torch" else "/"
    used, assigned = set(), set()

    def take(key):
        assert key in params, f"official parameter {key!r} does not exist"
        used.add(key)
        return params[key]

    for official, ours in layer_map.items():
        layer = layers[ours]
        if isinstance(layer, keras.layers.BatchNormalization):
            names = TORCH_BN if layout == "torch" else TF_BN
            targets = (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)
            for var, key in zip(targets, names):
                var.assign(take(f"{official}{sep}{key}").astype(np.float32))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            if layout == "torch":
                w = take(f"{official}.weight")
                # OIHW -> HWIO for convolutions, (out, in) -> (in, out) for linear layers
                kernel = w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T
                bias_key = f"{official}.bias"
            else:
                kernel, bias_key = take(f"{official}/kernel"), f"{official}/bias"
            layer.kernel.assign(kernel.astype(np.float32))
            if layer.use_bias:
                layer.bias.assign(take(bias_key).astype(np.float32))
        else:
            raise TypeError(f"no copy rule for {type(layer).__name__} {ours!r}")
        assigned.update(id(v) for v in layer.weights)
    unassigned = [v.path for v in model.weights if id(v) not in assigned]
    assert not unassigned, f"our variables with no official counterpart: {unassigned}"
    unused = sorted(set(params) - used)
    assert not unused, f"official parameters with no counterpart in ours: {unused}"


def assert_rel_close(actual, expected, what, rel=REL):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err, scale = np.max(np.abs(actual - expected)), np.max(np.abs(expected))
    assert err <= rel * scale, (f"{what}: max|ours - ref| = {err:.3g}, max|ref| = {scale:.3g}, "
                                f"relative {err / scale:.3g} > {rel}")


def setup(name, seed):
    case = case_for(name)
    model = build_model(name, case.input_shape, case.num_classes, **case.kwargs)
    assert len(model.layers) == case.stages
    net = case.reference()
    x = np.random.default_rng(seed).normal(size=(BATCH,) + case.input_shape)
    x_ref = x.transpose(0, 3, 1, 2) if case.layout == "torch" else x
    return case, model, net, x.astype(np.float32), x_ref


@pytest.mark.parametrize("name", model_names())
def test_inference_matches_the_reference(name):
    case, model, net, x, x_ref = setup(name, 10)
    expected, _ = net(x_ref, training=False)  # also draws the reference's parameters
    copy_weights(net.params.values, case.layer_map, case.layout, model)
    ours = model(x, training=False)
    assert_rel_close(ours, expected, f"{name} inference logits")


@pytest.mark.parametrize("name", model_names())
def test_training_mode_matches_the_reference(name):
    case, model, net, x, x_ref = setup(name, 11)
    # The reference returns its batch-norm updates without applying them, so the
    # parameters it draws here are the ones before the pass.
    expected, updates = net(x_ref, training=True)
    copy_weights(net.params.values, case.layer_map, case.layout, model)
    ours = model(x, training=True)
    assert_rel_close(ours, expected, f"{name} training-mode logits (batch statistics)")
    layers = layers_by_name(model)
    bn_layers = {n for n, l in layers.items() if isinstance(l, keras.layers.BatchNormalization)}
    assert {case.layer_map[k] for k in updates} == bn_layers
    for official, update in updates.items():
        layer = layers[case.layer_map[official]]
        assert_rel_close(layer.moving_mean.numpy(), update["running_mean"],
                         f"{name} {official} moving mean")
        # Keras averages in the biased batch variance (see the test below).
        assert_rel_close(layer.moving_variance.numpy(), update["running_var_biased"],
                         f"{name} {official} moving variance")


def test_every_case_is_a_registered_model():
    assert set(CASES) <= set(model_names())


def test_only_networks_pinned_at_full_size_run_reduced():
    """A reduced case stands for its full network only if that network's size is pinned
    (built at full size in tests/test_models.py); every other model runs as registered."""
    reduced = {name for name, case in CASES.items() if case.kwargs}
    assert reduced <= set(model_sizes.FULL_SIZE), reduced - set(model_sizes.FULL_SIZE)


@pytest.mark.parametrize("width", [8, 16, 32])
def test_default_scales_match_the_official_rule_at_the_tested_sizes(width):
    # The official default is ceil(log2(width)) - 2; ours floors, so the two agree on
    # powers of two (the sizes above). STL-10's 96 pixels: ours 4, the official default 5,
    # but the paper's STL-10 runs pass --scales=4 (runs/table2.sh).
    assert default_scales((width, width, 3)) == ref.official_scales(width)


def test_keras_running_variance_uses_the_biased_batch_variance():
    """Keras: new = m old + (1 - m) var_biased. PyTorch (momentum 0.1) and TF1's fused
    batch norm use var_unbiased = var_biased n / (n - 1), n = batch x height x width.

    At n = 4 the two rules differ by a third of the batch term. At the papers' sizes
    the gap is (1 - m) var / (n - 1) per step and 1 / (n - 1) of the running variance
    in steady state, largest in the last stage: PreAct ResNet-18 (4x4 maps) n = 1024
    for DivideMix's 64-image guessing passes (9.8e-4), 4096 for its 256 mixed images,
    2048 for mixup's 128 (4.9e-4); WRN-28 (8x8 maps, MixMatch batches of 64) n = 4096
    (2.4e-4).
    """
    x = np.array([1.0, 2.0, 4.0, 7.0], np.float32).reshape(2, 2, 1, 1)  # n = 4, one channel
    var_biased = float(np.var(x))
    for keras_momentum in (0.9, 0.999):
        layer = batch_norm(keras_momentum, 1e-5, False)
        layer.build(x.shape)
        layer.moving_variance.assign(np.array([3.0], np.float32))
        layer(x, training=True)
        new = float(layer.moving_variance.numpy()[0])
        w = 1.0 - keras_momentum
        np.testing.assert_allclose(new, (1 - w) * 3.0 + w * var_biased, rtol=1e-6)
        official = (1 - w) * 3.0 + w * var_biased * 4 / 3
        np.testing.assert_allclose(official - new, w * var_biased / 3, rtol=1e-4)


def test_reference_padding_conventions_by_hand():
    # 4x4 map 0..15, 3x3 kernel of ones, stride 2: window sums. PyTorch padding=1 pads
    # every side, so windows start at rows/columns -1 and 1 (first: 0+1+4+5 = 10);
    # TF "SAME" pads (0, 1), so they start at 0 and 2 (first: 0+1+2+4+5+6+8+9+10 = 45).
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    torch_out = ref.conv2d_nchw(x, np.ones((1, 1, 3, 3)), stride=2, padding=1)
    np.testing.assert_array_equal(torch_out[0, 0], [[10, 24], [51, 90]])
    tf_out = ref.conv2d_nhwc_same(x.reshape(1, 4, 4, 1), np.ones((3, 3, 1, 1)), stride=2)
    np.testing.assert_array_equal(tf_out[0, :, :, 0], [[45, 39], [66, 50]])
    # Our PreAct ResNet's stride-2 convs follow PyTorch, the WRN's follow TF.
    assert ref.avg_pool2d_nchw(x, 4)[0, 0, 0, 0] == 7.5
