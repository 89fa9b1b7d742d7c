"""Independent NumPy references of the networks we ship (test-only).

Each reference is written after the official source, not after our Keras code, in
the official framework's own layout and parameter names, in float64:

* ``PreActResNet18``: ``ResNet18()`` = ``ResNet(PreActBlock, [2, 2, 2, 2])`` of
  LiJunnan1992/DivideMix ``PreResNet.py`` and facebookresearch/mixup-cifar10
  ``models/resnet.py`` (the two define the same network). PyTorch layout: NCHW
  activations, OIHW kernels, ``(out, in)`` linear weights, ``state_dict`` names.
  ``nn.Conv2d(padding=1)`` pads one pixel on every side; ``nn.BatchNorm2d`` has
  momentum 0.1 (the weight of the new batch) and epsilon 1e-5.
* ``MixMatchResNet``: ``ResNet.classifier`` of google-research/mixmatch
  ``libml/models.py`` (TF 1.14). TF1 layout: NHWC activations, HWIO kernels,
  ``tf.layers`` variable names in creation order (``classify/conv2d_3/kernel``),
  TF "SAME" padding, ``tf.layers.batch_normalization(momentum=0.999)`` (the
  weight of the old value) with the default epsilon 1e-3, leaky ReLU 0.1, conv
  and dense biases. The official input standardisation ``(x - mean) / std`` is
  left out: our data pipeline applies it before the network.
* ``BottleneckResNet``: torchvision's ``ResNet(Bottleneck, ...)`` (ResNet-50/101,
  ResNeXt-101), PyTorch layout as above; 3x3 max pool padded with -inf.
* ``WideResNet``: ``resnet(depth, width, num_classes)`` of
  szagoruyko/wide-residual-networks ``pytorch/resnet.py`` (PyTorch layout).
* ``DenseNetBC``: the CIFAR DenseNet-BC of liuzhuang13/DenseNet
  ``models/densenet.lua`` (Torch; NCHW, OIHW, names in torchvision's style).
* ``SmallCNN`` and ``MLP`` are ours; they follow their docstrings.

Batch norm in training mode normalises with the biased batch variance in both
frameworks. The running variance is another matter: PyTorch and TF1's fused
batch norm (what ``tf.layers.batch_normalization`` picks for 4-D inputs) both
average in the UNBIASED batch variance (Bessel's n / (n - 1), n = batch x height x
width), Keras 3 the biased one. Each training-mode pass therefore returns, per
batch-norm layer, the official update (``running_var``) and the same update with the
biased variance (``running_var_biased``), so a test can pin both.
"""
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class Params:
    """Named parameters, drawn at random on first use (like a fresh nn.Module or
    TF1's ``get_variable``), so a reference owns its weights and tests copy them
    into the model under test.

    Batch-norm statistics and affine parameters are random as well: with identity
    batch norm a wiring error (a missing or extra batch norm) would go unseen.
    """

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.values = {}

    def get(self, name, shape, kind):
        shape = tuple(int(s) for s in shape)
        if name not in self.values:
            self.values[name] = self._draw(shape, kind)
        if self.values[name].shape != shape:
            raise ValueError(f"{name}: stored shape {self.values[name].shape}, asked for {shape}")
        return self.values[name]

    def _draw(self, shape, kind):
        rng = self.rng
        if kind in ("conv_oihw", "dense_oi"):  # fan in = all but the first axis
            return rng.normal(0.0, math.sqrt(2.0 / np.prod(shape[1:])), shape)
        if kind in ("conv_hwio", "dense_io"):  # fan in = all but the last axis
            return rng.normal(0.0, math.sqrt(2.0 / np.prod(shape[:-1])), shape)
        if kind == "bias":
            return rng.normal(0.0, 0.1, shape)
        if kind == "gamma":
            return rng.uniform(0.5, 1.5, shape)
        if kind == "beta":
            return rng.normal(0.0, 0.2, shape)
        if kind == "mean":
            return rng.normal(0.0, 0.3, shape)
        if kind == "var":
            return rng.uniform(0.5, 2.0, shape)
        raise ValueError(kind)


def relu(x):
    return np.maximum(x, 0.0)


def leaky_relu(x, alpha=0.1):
    return np.maximum(x, alpha * x)


def batch_norm(x, channel_axis, gamma, beta, mean, var, eps, training, new_weight):
    """Batch norm over every axis but ``channel_axis``.

    Args:
      new_weight: weight of the batch statistic in the running average
        (PyTorch's ``momentum``; 1 - TF's ``momentum``).

    Returns:
      ``(y, update)``; ``update`` is None in inference mode, else a dict with the
      new ``running_mean``, ``running_var`` (unbiased batch variance, the official
      rule), ``running_var_biased`` and the per-channel count ``n``.
    """
    axes = tuple(a for a in range(x.ndim) if a != channel_axis)
    shape = [1] * x.ndim
    shape[channel_axis] = -1
    update = None
    if training:
        batch_mean = x.mean(axis=axes)
        batch_var = x.var(axis=axes)  # biased: used to normalise
        n = x.size // x.shape[channel_axis]
        update = {
            "running_mean": (1 - new_weight) * mean + new_weight * batch_mean,
            "running_var": (1 - new_weight) * var + new_weight * batch_var * n / (n - 1),
            "running_var_biased": (1 - new_weight) * var + new_weight * batch_var,
            "n": n,
        }
        mean, var = batch_mean, batch_var
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * gamma.reshape(shape) + beta.reshape(shape), update


# ----------------------------------------------------------------------------------------------
# PyTorch layout (NCHW, OIHW)


def conv2d_nchw(x, w, stride, padding, groups=1):
    """``F.conv2d(x, w, stride=stride, padding=padding, groups=groups)``: zero padding
    on every side; with groups, input channel group g meets output channel group g."""
    if groups > 1:
        xs = np.split(x, groups, axis=1)
        ws = np.split(w, groups, axis=0)  # OIHW: each group's outputs see C / groups inputs
        return np.concatenate([conv2d_nchw(xg, wg, stride, padding) for xg, wg in zip(xs, ws)],
                              axis=1)
    _, c, h, wd = x.shape
    _, ci, kh, kw = w.shape
    assert c == ci, (c, ci)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    # im2col: windows (n, c, ho, wo, kh, kw), one matrix product with the kernel
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :ho, :wo]
    return np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def avg_pool2d_nchw(x, k, stride=None):
    """``F.avg_pool2d(x, k, stride)`` (stride defaults to k, as in PyTorch and cuDNN's
    Torch pooling): no padding, partial windows dropped."""
    stride = stride or k
    n, c, h, w = x.shape
    if h < k or w < k:
        raise ValueError(f"avg_pool2d({k}) of a {h}x{w} map: PyTorch raises here")
    if stride == k:
        ho, wo = h // k, w // k
        x = x[:, :, :ho * k, :wo * k].reshape(n, c, ho, k, wo, k)
        return x.mean(axis=(3, 5))
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride].mean(axis=(4, 5))


def max_pool2d_nchw(x, k, stride, padding):
    """``F.max_pool2d(x, k, stride, padding)``: the padding is -inf (it never wins)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)),
                constant_values=-np.inf)
    ho = (x.shape[2] + 2 * padding - k) // stride + 1
    wo = (x.shape[3] + 2 * padding - k) // stride + 1
    windows = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return windows[:, :, :ho, :wo].max(axis=(4, 5))


class _TorchLayers:
    """``nn.Conv2d`` (no bias) and ``nn.BatchNorm2d`` on named parameters, NCHW."""

    EPS = 1e-5
    MOMENTUM = 0.1  # nn.BatchNorm2d default: weight of the new batch

    def _conv(self, x, name, cin, cout, k, stride, padding, groups=1):
        w = self.params.get(f"{name}.weight", (cout, cin // groups, k, k), "conv_oihw")
        return conv2d_nchw(x, w, stride, padding, groups)

    def _bn(self, x, name, training, updates):
        p = self.params
        c = x.shape[1]
        y, update = batch_norm(
            x, 1, p.get(f"{name}.weight", (c,), "gamma"), p.get(f"{name}.bias", (c,), "beta"),
            p.get(f"{name}.running_mean", (c,), "mean"), p.get(f"{name}.running_var", (c,), "var"),
            self.EPS, training, self.MOMENTUM)
        if update is not None:
            updates[name] = update
        return y

    def _linear(self, x, name, units):
        w = self.params.get(f"{name}.weight", (units, x.shape[1]), "dense_oi")
        return x @ w.T + self.params.get(f"{name}.bias", (units,), "bias")


class PreActResNet18(_TorchLayers):
    """``ResNet(PreActBlock, [2, 2, 2, 2], num_classes)`` of the official PyTorch code."""

    def __init__(self, num_classes=10, seed=0):
        self.num_classes = num_classes
        self.params = Params(seed)

    def _preact_block(self, x, name, in_planes, planes, stride, training, updates):
        # PreActBlock.forward: the shortcut is taken from relu(bn1(x)), not from x.
        out = relu(self._bn(x, f"{name}.bn1", training, updates))
        if stride != 1 or in_planes != planes:
            shortcut = self._conv(out, f"{name}.shortcut.0", in_planes, planes, 1, stride, 0)
        else:
            shortcut = out  # nn.Sequential() is the identity on its argument, `out`
        out = self._conv(out, f"{name}.conv1", in_planes, planes, 3, stride, 1)
        out = self._conv(relu(self._bn(out, f"{name}.bn2", training, updates)),
                         f"{name}.conv2", planes, planes, 3, 1, 1)
        return out + shortcut

    def __call__(self, x_nchw, training=False):
        """Logits and, in training mode, the batch-norm updates by module name."""
        updates = {}
        out = self._conv(np.asarray(x_nchw, np.float64), "conv1", x_nchw.shape[1], 64, 3, 1, 1)
        out = relu(self._bn(out, "bn1", training, updates))
        in_planes = 64
        for layer, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            for index, s in enumerate((stride, 1)):  # _make_layer: [stride] + [1] * (2 - 1)
                out = self._preact_block(out, f"layer{layer}.{index}", in_planes, planes, s,
                                         training, updates)
                in_planes = planes
        out = avg_pool2d_nchw(out, 4)
        out = out.reshape(out.shape[0], -1)  # out.view(out.size(0), -1): C, H, W order
        w = self.params.get("linear.weight", (self.num_classes, 512), "dense_oi")
        b = self.params.get("linear.bias", (self.num_classes,), "bias")
        return out @ w.T + b, updates


class BottleneckResNet(_TorchLayers):
    """torchvision's ``ResNet(Bottleneck, layers, num_classes, groups, width_per_group)``
    (``resnet50``: layers [3, 4, 6, 3]; ``resnet101``: [3, 4, 23, 3];
    ``resnext101_64x4d``: [3, 4, 23, 3], groups 64, width_per_group 4; the ResNeXt
    paper's 32x4d: groups 32, width_per_group 4), whose ResNeXt block is form (c) of
    facebookresearch/ResNeXt ``models/resnext.lua``.

    ``planes`` replaces torchvision's fixed (64, 128, 256, 512) so that tests can run
    narrow configurations; the stem has ``planes[0]`` channels (torchvision's
    ``inplanes = 64``). ``state_dict`` names: ``conv1``, ``bn1``,
    ``layer{i}.{j}.conv1``..``bn3``, ``layer{i}.{j}.downsample.0`` (1x1 conv) and
    ``.1`` (BN), ``fc``.
    """

    EXPANSION = 4

    def __init__(self, layers, num_classes=1000, groups=1, width_per_group=64,
                 planes=(64, 128, 256, 512), seed=0):
        self.layers, self.num_classes = tuple(layers), num_classes
        self.groups, self.base_width, self.planes = groups, width_per_group, tuple(planes)
        self.params = Params(seed)

    def _bottleneck(self, x, name, inplanes, planes, stride, training, updates):
        # Bottleneck.__init__: width = int(planes * (base_width / 64.)) * groups; the
        # stride is on conv2, the 3x3 ("ResNet V1.5").
        width = int(planes * (self.base_width / 64.0)) * self.groups
        out = relu(self._bn(self._conv(x, f"{name}.conv1", inplanes, width, 1, 1, 0),
                            f"{name}.bn1", training, updates))
        out = relu(self._bn(self._conv(out, f"{name}.conv2", width, width, 3, stride, 1,
                                       self.groups), f"{name}.bn2", training, updates))
        out = self._bn(self._conv(out, f"{name}.conv3", width, planes * self.EXPANSION, 1, 1, 0),
                       f"{name}.bn3", training, updates)
        identity = x
        if stride != 1 or inplanes != planes * self.EXPANSION:  # _make_layer's downsample
            identity = self._bn(self._conv(x, f"{name}.downsample.0", inplanes,
                                           planes * self.EXPANSION, 1, stride, 0),
                                f"{name}.downsample.1", training, updates)
        return relu(out + identity)

    def __call__(self, x_nchw, training=False):
        updates = {}
        x = np.asarray(x_nchw, np.float64)
        x = self._conv(x, "conv1", x.shape[1], self.planes[0], 7, 2, 3)
        x = max_pool2d_nchw(relu(self._bn(x, "bn1", training, updates)), 3, 2, 1)
        inplanes = self.planes[0]
        for i, (planes, blocks) in enumerate(zip(self.planes, self.layers), start=1):
            for j in range(blocks):
                stride = 2 if i > 1 and j == 0 else 1
                x = self._bottleneck(x, f"layer{i}.{j}", inplanes, planes, stride, training,
                                     updates)
                inplanes = planes * self.EXPANSION
        x = x.mean(axis=(2, 3))  # AdaptiveAvgPool2d((1, 1)), flatten
        return self._linear(x, "fc", self.num_classes), updates


class WideResNet(_TorchLayers):
    """``resnet(depth, width, num_classes)`` of szagoruyko/wide-residual-networks
    ``pytorch/resnet.py`` (the same network as its ``models/wide-resnet.lua``).

    Parameter names are the official flat ones (``conv0``, ``group0.block0.bn0``,
    ``...conv0``, ``...bn1``, ``...conv1``, ``...convdim``, ``bn``, ``fc``), except
    that a convolution's kernel is stored as ``<name>.weight`` where the official
    dict keys it ``<name>``. ``F.batch_norm``'s defaults: momentum 0.1, eps 1e-5.
    """

    def __init__(self, depth, width, num_classes, seed=0):
        assert (depth - 4) % 6 == 0, "depth should be 6n+4"
        self.n, self.num_classes = (depth - 4) // 6, num_classes
        self.widths = [int(v * width) for v in (16, 32, 64)]
        self.params = Params(seed)

    def _block(self, x, base, ni, no, stride, training, updates):
        o1 = relu(self._bn(x, f"{base}.bn0", training, updates))
        y = self._conv(o1, f"{base}.conv0", ni, no, 3, stride, 1)
        o2 = relu(self._bn(y, f"{base}.bn1", training, updates))
        z = self._conv(o2, f"{base}.conv1", no, no, 3, 1, 1)
        if ni != no:  # 'convdim' exists exactly when the width changes; it sees o1
            return z + self._conv(o1, f"{base}.convdim", ni, no, 1, stride, 0)
        return z + x

    def __call__(self, x_nchw, training=False):
        updates = {}
        x = self._conv(np.asarray(x_nchw, np.float64), "conv0", x_nchw.shape[1], 16, 3, 1, 1)
        ni = 16
        for g, (no, stride) in enumerate(zip(self.widths, (1, 2, 2))):
            for b in range(self.n):
                x = self._block(x, f"group{g}.block{b}", ni, no, stride if b == 0 else 1,
                                training, updates)
                ni = no
        o = relu(self._bn(x, "bn", training, updates))
        o = avg_pool2d_nchw(o, 8, 1)  # F.avg_pool2d(o, 8, 1, 0)
        o = o.reshape(o.shape[0], -1)
        return self._linear(o, "fc", self.num_classes), updates


class DenseNetBC(_TorchLayers):
    """The CIFAR DenseNet-BC of liuzhuang13/DenseNet ``models/densenet.lua``
    (``bottleneck = true``, ``DenseConnectLayerStandard``, no dropout).

    The Lua model has no parameter names; these follow torchvision's DenseNet:
    ``features.conv0``, ``features.denseblock{b}.denselayer{l}.norm1`` / ``conv1`` /
    ``norm2`` / ``conv2``, ``features.transition{b}.norm`` / ``conv``,
    ``features.norm_final``, ``classifier``. Torch's batch norm: momentum 0.1, eps 1e-5.
    """

    def __init__(self, depth, growth_rate, num_classes, reduction=0.5, seed=0):
        assert (depth - 4) % 6 == 0
        self.n = (depth - 4) // 3 // 2  # N = (depth - 4) / 3, halved for the bottleneck
        self.k, self.reduction, self.num_classes = growth_rate, reduction, num_classes
        self.params = Params(seed)

    def _layer(self, x, name, training, updates):
        c = x.shape[1]
        y = relu(self._bn(x, f"{name}.norm1", training, updates))
        y = self._conv(y, f"{name}.conv1", c, 4 * self.k, 1, 1, 0)
        y = relu(self._bn(y, f"{name}.norm2", training, updates))
        y = self._conv(y, f"{name}.conv2", 4 * self.k, self.k, 3, 1, 1)
        return np.concatenate([x, y], axis=1)  # nn.Concat(2): the identity, then the new maps

    def _transition(self, x, name, training, updates):
        c = x.shape[1]
        y = relu(self._bn(x, f"{name}.norm", training, updates))
        y = self._conv(y, f"{name}.conv", c, math.floor(c * self.reduction), 1, 1, 0)
        return avg_pool2d_nchw(y, 2)  # cudnn.SpatialAveragePooling(2, 2): stride 2

    def __call__(self, x_nchw, training=False):
        updates = {}
        x = self._conv(np.asarray(x_nchw, np.float64), "features.conv0", x_nchw.shape[1],
                       2 * self.k, 3, 1, 1)
        for b in range(1, 4):
            for i in range(1, self.n + 1):
                x = self._layer(x, f"features.denseblock{b}.denselayer{i}", training, updates)
            if b < 3:
                x = self._transition(x, f"features.transition{b}", training, updates)
        x = relu(self._bn(x, "features.norm_final", training, updates))
        x = avg_pool2d_nchw(x, 8)  # the 8x8 map of a 32x32 input
        x = x.reshape(x.shape[0], -1)  # nn.Reshape(nChannels)
        return self._linear(x, "classifier", self.num_classes), updates


# ----------------------------------------------------------------------------------------------
# TF1 / Keras layout (NHWC, HWIO)


def same_padding(size, k, stride):
    """TF "SAME": output ceil(size / stride); the odd pixel of padding goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def conv2d_nhwc_same(x, w, stride, bias=None):
    """``tf.nn.conv2d(x, w, stride, "SAME") (+ bias)`` with an HWIO kernel."""
    _, h, wd, c = x.shape
    kh, kw, ci, _ = w.shape
    assert c == ci, (c, ci)
    (pt, pb), (pl, pr) = same_padding(h, kh, stride), same_padding(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    ho, wo = -(-h // stride), -(-wd // stride)
    # im2col: windows (n, ho, wo, c, kh, kw), one matrix product with the kernel
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride][:, :ho, :wo]
    out = np.tensordot(windows, w, axes=([3, 4, 5], [2, 0, 1]))
    return out if bias is None else out + bias


class _Tf1Layers:
    """``tf.layers`` in one ``variable_scope('classify')``: unnamed layers are called
    ``conv2d``, ``conv2d_1``, ... and ``batch_normalization``, ... in creation order,
    counting from zero again on every call of the classifier (the scope is re-entered
    with reuse)."""

    def __init__(self, params, training, updates, momentum, eps):
        self.params, self.training, self.updates = params, training, updates
        self.momentum, self.eps = momentum, eps
        self.counts = {}

    def _name(self, base):
        i = self.counts.get(base, 0)
        self.counts[base] = i + 1
        return f"classify/{base}" + (f"_{i}" if i else "")

    def conv2d(self, x, filters, k, stride=1):
        name = self._name("conv2d")
        w = self.params.get(f"{name}/kernel", (k, k, x.shape[-1], filters), "conv_hwio")
        b = self.params.get(f"{name}/bias", (filters,), "bias")  # tf.layers: use_bias=True
        return conv2d_nhwc_same(x, w, stride, b)

    def batch_normalization(self, x):
        name = self._name("batch_normalization")
        c, p = x.shape[-1], self.params
        y, update = batch_norm(
            x, x.ndim - 1, p.get(f"{name}/gamma", (c,), "gamma"), p.get(f"{name}/beta", (c,), "beta"),
            p.get(f"{name}/moving_mean", (c,), "mean"), p.get(f"{name}/moving_variance", (c,), "var"),
            self.eps, self.training, 1.0 - self.momentum)
        if update is not None:
            self.updates[name] = update
        return y

    def dense(self, x, units):
        name = self._name("dense")
        w = self.params.get(f"{name}/kernel", (x.shape[-1], units), "dense_io")
        return x @ w + self.params.get(f"{name}/bias", (units,), "bias")


def official_scales(width):
    """libml/train.py: ``scales = FLAGS.scales or ilog2(dataset.width) - 2`` with
    ``ilog2 = ceil(log2)``."""
    return int(math.ceil(math.log2(width))) - 2


class MixMatchResNet:
    """``ResNet.classifier`` of the official MixMatch code (WRN-28-k: repeat 4)."""

    MOMENTUM = 0.999  # bn_args; TF convention: weight of the old value
    EPS = 1e-3  # tf.layers.batch_normalization default

    def __init__(self, nclass, filters, scales, repeat=4, seed=0):
        self.nclass, self.filters, self.scales, self.repeat = nclass, filters, scales, repeat
        self.params = Params(seed)

    def __call__(self, x_nhwc, training=False):
        updates = {}
        tl = _Tf1Layers(self.params, training, updates, self.MOMENTUM, self.EPS)

        def residual(x0, filters, stride=1, activate_before_residual=False):
            x = leaky_relu(tl.batch_normalization(x0))
            if activate_before_residual:
                x0 = x
            x = tl.conv2d(x, filters, 3, stride)
            x = leaky_relu(tl.batch_normalization(x))
            x = tl.conv2d(x, filters, 3)
            if x0.shape[3] != filters:  # the 1x1 shortcut is created after conv2
                x0 = tl.conv2d(x0, filters, 1, stride)
            return x0 + x

        y = tl.conv2d(np.asarray(x_nhwc, np.float64), 16, 3)
        for scale in range(self.scales):
            y = residual(y, self.filters << scale, stride=2 if scale else 1,
                         activate_before_residual=scale == 0)
            for _ in range(self.repeat - 1):
                y = residual(y, self.filters << scale)
        y = leaky_relu(tl.batch_normalization(y))
        y = y.mean(axis=(1, 2))
        return tl.dense(y, self.nclass), updates


# ----------------------------------------------------------------------------------------------
# Ours, from their docstrings (Keras layout, our layer names)


def max_pool_2x2(x):
    """2x2 max pooling, stride 2, "valid" (an odd last row/column is dropped)."""
    n, h, w, c = x.shape
    x = x[:, :h // 2 * 2, :w // 2 * 2, :].reshape(n, h // 2, 2, w // 2, 2, c)
    return x.max(axis=(2, 4))


class SmallCNN:
    """``small_cnn``: [3x3 conv (no bias, "same") - BN - ReLU] x2 at ``width`` channels,
    2x2 max pool, the same x2 at ``2 * width``, global average pool, dense (with bias).
    Batch norm momentum 0.1 in PyTorch's convention (Keras 0.9), epsilon 1e-5."""

    MOMENTUM = 0.1
    EPS = 1e-5

    def __init__(self, num_classes, width=32, seed=0):
        self.num_classes, self.width = num_classes, width
        self.params = Params(seed)

    def __call__(self, x_nhwc, training=False):
        updates, p = {}, self.params

        def conv_bn_relu(x, filters, name):
            w = p.get(f"{name}_conv/kernel", (3, 3, x.shape[-1], filters), "conv_hwio")
            x = conv2d_nhwc_same(x, w, 1)
            y, update = batch_norm(
                x, 3, p.get(f"{name}_bn/gamma", (filters,), "gamma"),
                p.get(f"{name}_bn/beta", (filters,), "beta"),
                p.get(f"{name}_bn/moving_mean", (filters,), "mean"),
                p.get(f"{name}_bn/moving_variance", (filters,), "var"),
                self.EPS, training, self.MOMENTUM)
            if update is not None:
                updates[f"{name}_bn"] = update
            return relu(y)

        x = np.asarray(x_nhwc, np.float64)
        x = conv_bn_relu(conv_bn_relu(x, self.width, "b1a"), self.width, "b1b")
        x = max_pool_2x2(x)
        x = conv_bn_relu(conv_bn_relu(x, 2 * self.width, "b2a"), 2 * self.width, "b2b")
        x = x.mean(axis=(1, 2))
        w = p.get("head_dense/kernel", (x.shape[-1], self.num_classes), "dense_io")
        return x @ w + p.get("head_dense/bias", (self.num_classes,), "bias"), updates


class MLP:
    """``mlp``: dense (with bias) + ReLU per hidden width, then a dense head."""

    def __init__(self, num_classes, hidden=(128, 128), seed=0):
        self.num_classes, self.hidden = num_classes, tuple(hidden)
        self.params = Params(seed)

    def __call__(self, x, training=False):
        del training  # no batch norm, no dropout by default
        x, p = np.asarray(x, np.float64), self.params
        for i, units in enumerate(self.hidden, start=1):
            w = p.get(f"dense{i}/kernel", (x.shape[-1], units), "dense_io")
            x = relu(x @ w + p.get(f"dense{i}/bias", (units,), "bias"))
        w = p.get("head_dense/kernel", (x.shape[-1], self.num_classes), "dense_io")
        return x @ w + p.get("head_dense/bias", (self.num_classes,), "bias"), {}
