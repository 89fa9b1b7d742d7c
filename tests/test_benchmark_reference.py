"""mixmatch_tf/cli/torch_reference.py builds the same networks as ours (needs the bench extra)."""
import numpy as np
import pytest

from mixmatch_tf.models import build_model

torch = pytest.importorskip("torch")
from mixmatch_tf.cli import torch_reference as _torch_reference  # noqa: E402


def weight_shapes_tf(model):
    """Sorted trainable weight shapes, conv kernels as PyTorch lays them out (O, I, H, W)."""
    shapes = []
    for v in model.trainable_weights:
        shape = tuple(v.shape)
        if len(shape) == 4:
            shape = (shape[3], shape[2], shape[0], shape[1])
        elif len(shape) == 2:
            shape = (shape[1], shape[0])
        shapes.append(shape)
    return sorted(shapes)


NETWORKS = [("wrn28_2", _torch_reference.WRN28),
            ("preact_resnet18", _torch_reference.PreActResNet18),
            ("resnet50", _torch_reference.ResNet50)]


@pytest.mark.parametrize("name,reference", NETWORKS)
def test_reference_network_has_our_weights(name, reference):
    ours = weight_shapes_tf(build_model(name, (32, 32, 3), 10))
    theirs = sorted(tuple(p.shape) for p in reference().parameters())
    assert ours == theirs


@pytest.mark.parametrize("name,reference", NETWORKS)
def test_reference_network_maps_cifar_images_to_logits(name, reference):
    with torch.no_grad():
        out = reference().eval()(torch.zeros(2, 3, 32, 32))
    assert tuple(out.shape) == (2, 10)


def test_interleave_is_ours():
    from mixmatch_tf.ops.interleave import interleave
    parts = [np.arange(10 * i, 10 * i + 10, dtype=np.float32) for i in range(3)]
    ours = [t.numpy() for t in interleave([p for p in parts], 10)]
    theirs = [t.numpy() for t in _torch_reference._interleave([torch.from_numpy(p) for p in parts], 10)]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)



def test_the_imagenet_mixup_step_runs_and_leaves_batch_norm_undecayed():
    """At 32 x 32 and batch 4 (the benchmark's is 224 and 64): a finite loss; the
    optimizer decays convolutions and the dense layer, not batch norm's gamma and
    beta (Goyal et al., as ``weight_decay_bn=False`` does for ours)."""
    loss = _torch_reference.resnet50_mixup_step(batch=4, size=32, classes=10)()
    assert np.isfinite(loss) and loss > 0
    net = _torch_reference.ResNet50()
    decays = {id(p): g["weight_decay"] for g in _torch_reference.goyal_sgd(net).param_groups
              for p in g["params"]}
    assert len(decays) == len(list(net.parameters()))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert decays[id(m.weight)] == decays[id(m.bias)] == 0.0
        elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            assert decays[id(m.weight)] == 1e-4
