"""scripts/_torch_reference.py builds the same networks as ours (needs the bench extra)."""
import os
import sys

import pytest

from conftest import ROOT
from mixmatch_tf.models import build_model

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import _torch_reference  # noqa: E402


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


@pytest.mark.parametrize("name,reference", [("wrn28_2", _torch_reference.WRN28),
                                            ("preact_resnet18", _torch_reference.PreActResNet18)])
def test_reference_network_has_our_weights(name, reference):
    ours = weight_shapes_tf(build_model(name, (32, 32, 3), 10))
    theirs = sorted(tuple(p.shape) for p in reference().parameters())
    assert ours == theirs


@pytest.mark.parametrize("name,reference", [("wrn28_2", _torch_reference.WRN28),
                                            ("preact_resnet18", _torch_reference.PreActResNet18)])
def test_reference_network_maps_cifar_images_to_logits(name, reference):
    with torch.no_grad():
        out = reference().eval()(torch.zeros(2, 3, 32, 32))
    assert tuple(out.shape) == (2, 10)


def test_interleave_is_ours():
    import numpy as np
    from mixmatch_tf.ops.interleave import interleave
    parts = [np.arange(10 * i, 10 * i + 10, dtype=np.float32) for i in range(3)]
    ours = [t.numpy() for t in interleave([p for p in parts], 10)]
    theirs = [t.numpy() for t in _torch_reference._interleave([torch.from_numpy(p) for p in parts], 10)]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
