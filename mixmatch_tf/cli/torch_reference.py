"""PyTorch reference train steps for ``mixmatch-benchmark`` (benchmark only).

Each ``*_step`` function builds a network and an optimizer and returns a function
that runs one training step, written as the reference implementations' own
training loops run it, on fixed random CIFAR-shaped (ImageNet-shaped for
ResNet-50) inputs held in memory (NCHW float32; no data loading, no augmentation):

* ``mixmatch_step`` (MixMatch-pytorch's loop, the official TF model): WRN-28-2 of
  google-research/mixmatch ``libml/models.py``. Under ``torch.no_grad`` two
  training-mode guessing passes over the K = 2 unlabeled batches of 64, softmax
  average, sharpening (T = 0.5); MixUp of the 64 + 2 x 64 images with one
  lambda' = max(lambda, 1 - lambda) and one permutation; the batch-norm
  interleave into 3 batches of 64 and 3 trained forward passes; soft
  cross-entropy + 75 x squared error; backward; Adam (lr 0.002); then the
  per-parameter EMA (0.999) and decoupled decay of the conv and dense weights
  (x (1 - 0.02 x 0.002)).
* ``mixup_step`` (mixup-cifar10 ``train.py``): PreAct ResNet-18, one batch of 128
  mixed with one lambda and one permutation, one forward, the two-target
  cross-entropy, backward, SGD (lr 0.1, momentum 0.9, weight decay 1e-4).
* ``dividemix_step`` (DivideMix ``Train_cifar.py`` ``train``): two PreAct
  ResNet-18. Under ``torch.no_grad`` four training-mode passes of the trained
  network (u1, u2, x1, x2; 64 each) and two eval-mode passes of the other one
  (u1, u2); co-guessing, co-refinement, sharpening; MixMatch of the 4 x 64 images
  with one lambda'; one trained forward of 256, soft cross-entropy + squared
  error + the prior penalty; backward; SGD (lr 0.02, momentum 0.9, weight decay
  5e-4).
* ``resnet50_mixup_step`` (the mixup paper's ImageNet recipe; its ImageNet code is
  not public): ResNet-50 in torchvision's form (``resnet50``: v1.5, the 3x3
  convolution strides; the last batch norm of each block starts at gamma 0), one
  batch of 64 random 224 x 224 images over 1000 classes, mixed as ``mixup_step``
  mixes with lambda ~ Beta(0.2, 0.2), SGD (lr 0.1, momentum 0.9, weight decay 1e-4
  but not on batch norm's gamma and beta, Goyal et al.). Ours reads its batch from
  JPEG files meanwhile (decoding on the same cores); this one trains on a tensor.

Differences that cost nothing measurable: TF's "same" padding of a stride-2 3x3
convolution pads (0, 1) where PyTorch pads (1, 1) (same output size and
FLOPs); the random inputs are not images. The networks' layer counts, widths,
biases and batch-norm placement are those of ``mixmatch_tf.models``.
"""
import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

NUM_CLASSES = 10


# ------------------------------------------------------------------ networks
class _WRNBlock(nn.Module):
    """Pre-activation block of the official MixMatch ResNet (leaky ReLU 0.1)."""

    def __init__(self, cin, cout, stride, activate_before_residual):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-3, momentum=0.001)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.001)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.activate_before_residual = activate_before_residual
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if cin != cout else None

    def forward(self, x0):
        x = F.leaky_relu(self.bn1(x0), 0.1)
        if self.activate_before_residual:
            x0 = x
        x = self.conv2(F.leaky_relu(self.bn2(self.conv1(x)), 0.1))
        return (x0 if self.shortcut is None else self.shortcut(x0)) + x


class WRN28(nn.Module):
    """WRN-28-2 as ``ResNet.classifier`` of the official MixMatch code builds it."""

    def __init__(self, filters=32, num_classes=NUM_CLASSES, scales=3, repeat=4):
        super().__init__()
        layers, cin = [nn.Conv2d(3, 16, 3, 1, 1)], 16
        for scale in range(scales):
            width = filters << scale
            layers.append(_WRNBlock(cin, width, 2 if scale else 1, scale == 0))
            layers += [_WRNBlock(width, width, 1, False) for _ in range(repeat - 1)]
            cin = width
        self.body = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin, eps=1e-3, momentum=0.001)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.leaky_relu(self.bn(self.body(x)), 0.1)
        return self.fc(x.mean((2, 3)))


class _PreActBlock(nn.Module):
    """DivideMix / mixup-cifar10 ``PreActBlock``: the shortcut leaves after bn1 + ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = out if self.shortcut is None else self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class PreActResNet18(nn.Module):
    """``ResNet18()`` of DivideMix ``PreResNet.py`` (= mixup-cifar10's): stem conv,
    BN, ReLU; four stages of two blocks; 4x4 average pool; linear."""

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        layers, cin = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()], 64
        for i, width in enumerate((64, 128, 256, 512)):
            layers += [_PreActBlock(cin, width, 1 if i == 0 else 2), _PreActBlock(width, width, 1)]
            cin = width
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(F.avg_pool2d(self.body(x), 4).flatten(1))


class _Bottleneck(nn.Module):
    """torchvision's ``Bottleneck``: 1x1, 3x3 (strided), 1x1 x 4 convs; projection
    shortcut when the shape changes."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = 4 * planes
        self.body = nn.Sequential(
            nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes),
            nn.ReLU(), nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout))
        nn.init.zeros_(self.body[-1].weight)  # zero_init_residual
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet50(nn.Module):
    """torchvision's ``resnet50``: 7x7 stem, max pool, stages of 3, 4, 6, 3 bottleneck
    blocks, global average pool, linear."""

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                  nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            for j in range(blocks):
                layers.append(_Bottleneck(cin, planes, 2 if i and not j else 1))
                cin = 4 * planes
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


# ------------------------------------------------------------------ helpers
def _images(rng, n, size=32):
    return torch.from_numpy(rng.standard_normal((n, 3, size, size)).astype(np.float32))


def _one_hot(rng, n):
    return F.one_hot(torch.from_numpy(rng.randint(0, NUM_CLASSES, n)), NUM_CLASSES).float()


def _sharpen(p, temperature):
    p = p ** (1.0 / temperature)
    return p / p.sum(1, keepdim=True)


def _mix(rng, x, y, alpha, keep_max):
    lam = float(rng.beta(alpha, alpha))
    lam = max(lam, 1.0 - lam) if keep_max else lam
    idx = torch.randperm(x.size(0))
    return lam * x + (1 - lam) * x[idx], lam * y + (1 - lam) * y[idx]


def _interleave(xy, batch):
    """MixMatch's batch-norm interleave (``mixmatch_tf.ops.interleave``), on a list."""
    nu = len(xy) - 1
    groups = [batch // (nu + 1)] * (nu + 1)
    for i in range(batch - sum(groups)):
        groups[-i - 1] += 1
    offsets = np.concatenate([[0], np.cumsum(groups)])
    parts = [[v[offsets[p]:offsets[p + 1]] for p in range(nu + 1)] for v in xy]
    for i in range(1, nu + 1):
        parts[0][i], parts[i][i] = parts[i][i], parts[0][i]
    return [torch.cat(p) for p in parts]


def _soft_ce(logits, targets):
    return -(F.log_softmax(logits, 1) * targets).sum(1).mean()


# ------------------------------------------------------------------ steps
def mixmatch_step(batch=64, views=2, seed=0):
    """One MixMatch step of WRN-28-2 (see the module docstring); returns ``step()``."""
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    model = WRN28().train()
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    x, y = _images(rng, batch), _one_hot(rng, batch)
    us = [_images(rng, batch) for _ in range(views)]

    def step():
        with torch.no_grad():
            q = sum(torch.softmax(model(u), 1) for u in us) / views
            q = _sharpen(q, 0.5)
        mixed_x, mixed_y = _mix(rng, torch.cat([x] + us), torch.cat([y] + [q] * views), 0.75,
                                keep_max=True)
        inputs = _interleave(list(torch.split(mixed_x, batch)), batch)
        logits = _interleave([model(inputs[0])] + [model(v) for v in inputs[1:]], batch)
        loss_x = _soft_ce(logits[0], mixed_y[:batch])
        loss_u = ((torch.softmax(torch.cat(logits[1:]), 1) - mixed_y[batch:]) ** 2).mean()
        loss = loss_x + 75.0 * loss_u
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema_params, params):
                e.mul_(0.999).add_(p, alpha=0.001)
                if p.dim() > 1:  # conv and dense weights
                    p.mul_(1.0 - 0.02 * 0.002)
        return float(loss.detach())
    return step


def mixup_step(batch=128, seed=0):
    """One mixup step of PreAct ResNet-18 (see the module docstring); returns ``step()``."""
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    model = PreActResNet18().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    return _mixup_loop(model, opt, _images(rng, batch),
                       torch.from_numpy(rng.randint(0, NUM_CLASSES, batch)), 1.0, rng)


def resnet50_mixup_step(batch=64, size=224, classes=1000, seed=0):
    """One ImageNet mixup step of ResNet-50 (see the module docstring); returns ``step()``."""
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    model = ResNet50(classes).train()
    return _mixup_loop(model, goyal_sgd(model), _images(rng, batch, size),
                       torch.from_numpy(rng.randint(0, classes, batch)), 0.2, rng)


def goyal_sgd(model, lr=0.1, weight_decay=1e-4):
    """SGD, momentum 0.9, decaying every parameter but batch norm's gamma and beta."""
    bn = [p for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()]
    rest = [p for p in model.parameters() if all(p is not q for q in bn)]
    return torch.optim.SGD([{"params": rest}, {"params": bn, "weight_decay": 0.0}], lr=lr,
                           momentum=0.9, weight_decay=weight_decay)


def _mixup_loop(model, opt, x, labels, alpha, rng):
    """mixup-cifar10's step on a fixed batch: one lambda, one permutation."""
    batch = x.size(0)

    def step():
        lam = float(rng.beta(alpha, alpha))
        idx = torch.randperm(batch)
        logits = model(lam * x + (1 - lam) * x[idx])
        loss = lam * F.cross_entropy(logits, labels) + (1 - lam) * F.cross_entropy(
            logits, labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())
    return step


def dividemix_step(batch=64, seed=0):
    """One DivideMix step of PreAct ResNet-18 (see the module docstring); returns ``step()``."""
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    net, peer = PreActResNet18().train(), PreActResNet18().eval()
    opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    x1, x2, u1, u2 = (_images(rng, batch) for _ in range(4))
    y = _one_hot(rng, batch)
    w = torch.from_numpy(rng.rand(batch, 1).astype(np.float32))
    prior = torch.full((NUM_CLASSES,), 1.0 / NUM_CLASSES)

    def step():
        with torch.no_grad():
            q_u = sum(torch.softmax(m(u), 1) for m in (net, peer) for u in (u1, u2)) / 4
            q_u = _sharpen(q_u, 0.5)
            p_x = (torch.softmax(net(x1), 1) + torch.softmax(net(x2), 1)) / 2
            q_x = _sharpen(w * y + (1 - w) * p_x, 0.5)
        mixed_x, mixed_y = _mix(rng, torch.cat([x1, x2, u1, u2]), torch.cat([q_x, q_x, q_u, q_u]),
                                4.0, keep_max=True)
        logits = net(mixed_x)
        loss_x = _soft_ce(logits[:2 * batch], mixed_y[:2 * batch])
        loss_u = ((torch.softmax(logits[2 * batch:], 1) - mixed_y[2 * batch:]) ** 2).mean()
        pred_mean = torch.softmax(logits, 1).mean(0)
        loss = loss_x + 25.0 * loss_u + (prior * torch.log(prior / pred_mean)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())
    return step


STEPS = {"mixmatch": mixmatch_step, "mixup": mixup_step, "dividemix": dividemix_step,
         "mixup_imagenet": resnet50_mixup_step}


def reference_step(method, precision="float32"):
    """``step()`` of ``method``'s reference, under CPU autocast for mixed precisions."""
    step = STEPS[method]()
    dtype = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}.get(precision)
    if dtype is None:
        return step

    def autocast_step():
        with torch.autocast("cpu", dtype=dtype):
            return step()
    return autocast_step
