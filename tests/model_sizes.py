"""Sizes of the full-size networks, by formula from their definitions (no framework).

A size is what torchvision's ``sum(p.numel() for p in model.parameters())`` counts:
every trainable weight (convolution kernels, batch-norm gamma and beta, dense kernel
and bias), not the batch-norm moving mean and variance. ``tests/test_models.py``
builds each network at full size (without running it) and checks its trainable
weights against both the formula and the published number; ``tests/test_parity.py``
accepts reduced parity cases only for the networks listed in ``FULL_SIZE``.
"""


def bottleneck_resnet(blocks, num_classes, groups=1, width_per_group=64,
                      planes=(64, 128, 256, 512)):
    """torchvision's ``ResNet(Bottleneck, blocks, groups=, width_per_group=)``."""
    n = 3 * planes[0] * 7 * 7 + 2 * planes[0]  # stem conv, BN
    cin = planes[0]
    for i, (p, count) in enumerate(zip(planes, blocks)):
        width, cout = int(p * width_per_group / 64) * groups, 4 * p
        for j in range(count):
            stride = 2 if i > 0 and j == 0 else 1
            n += cin * width + 2 * width                         # 1x1, BN
            n += 3 * 3 * (width // groups) * width + 2 * width  # grouped 3x3, BN
            n += width * cout + 2 * cout                         # 1x1, BN
            if stride != 1 or cin != cout:
                n += cin * cout + 2 * cout                       # projection 1x1, BN
            cin = cout
    return n + cin * num_classes + num_classes


def wide_resnet(depth, k, num_classes):
    """Zagoruyko & Komodakis's WRN-depth-k (no conv biases, 1x1 shortcut when the width changes)."""
    n = (depth - 4) // 6
    total, cin = 3 * 3 * 3 * 16, 16
    for width in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += 2 * cin + 9 * cin * width + 2 * width + 9 * width * width
            total += cin * width if cin != width else 0
            cin = width
    return total + 2 * cin + cin * num_classes + num_classes


def densenet_bc(depth, k, num_classes, compression=0.5):
    """Huang et al.'s CIFAR DenseNet-BC (BN-ReLU-1x1(4k)-BN-ReLU-3x3(k) layers)."""
    n = (depth - 4) // 6
    c = 2 * k
    total = 3 * 3 * 3 * c
    for block in range(3):
        for _ in range(n):
            total += 2 * c + c * 4 * k + 2 * 4 * k + 9 * 4 * k * k
            c += k
        if block < 2:
            out = int(c * compression)
            total += 2 * c + c * out  # transition BN, 1x1 conv
            c = out
    return total + 2 * c + c * num_classes + num_classes


# name -> (input shape it is built at, classes, exact size, size by formula, the
# paper's size in millions where we quote one). Exact sizes as the reference
# implementations report them: torchvision (resnet50, resnet101, resnext101_64x4d),
# the ResNeXt paper's 32x4d model as ported by Cadene's pretrainedmodels; for
# WRN-28-10 and DenseNet-BC-190 the papers give millions ("36.5M", "25.6M") and the
# exact count is that of the official code.
FULL_SIZE = {
    "resnet50": ((224, 224, 3), 1000, 25_557_032, bottleneck_resnet((3, 4, 6, 3), 1000), None),
    "resnet101": ((224, 224, 3), 1000, 44_549_160, bottleneck_resnet((3, 4, 23, 3), 1000), None),
    "resnext101_32x4d": ((224, 224, 3), 1000, 44_177_704,
                         bottleneck_resnet((3, 4, 23, 3), 1000, groups=32, width_per_group=4),
                         None),
    "resnext101_64x4d": ((224, 224, 3), 1000, 83_455_272,
                         bottleneck_resnet((3, 4, 23, 3), 1000, groups=64, width_per_group=4),
                         None),
    "wrn28_10": ((32, 32, 3), 10, 36_479_194, wide_resnet(28, 10, 10), 36.5),
    "densenet_bc_190": ((32, 32, 3), 10, 25_624_430, densenet_bc(190, 40, 10), 25.6),
}
