"""Each method's random crop pads as the official code it follows."""
import pytest

from mixmatch_tf.methods import get_method, method_names
from mixmatch_tf.training import RunConfig, Trainer

# method -> (padding of its random crop, the official file that decides it)
OFFICIAL_CROP_PADDING = {
    "erm": ("zeros", "facebookresearch/mixup-cifar10 train.py: RandomCrop(32, padding=4)"),
    "mixup": ("zeros", "facebookresearch/mixup-cifar10 train.py: RandomCrop(32, padding=4)"),
    "dividemix": ("zeros", "LiJunnan1992/DivideMix dataloader_cifar.py: RandomCrop(32, padding=4)"),
    # bhanML/Co-teaching main.py uses ToTensor() only: no crop unless --augment.
    "coteaching": ("zeros", "bhanML/Co-teaching main.py (no crop); torchvision's fill when asked"),
    "mixmatch": ("reflect", "google-research/mixmatch libml/data.py augment_shift: REFLECT"),
    "mixup_ssl": ("reflect", "google-research/mixmatch libml/data.py augment_shift: REFLECT"),
    "pi_model": ("reflect", "google-research/mixmatch libml/data.py augment_shift: REFLECT"),
    "pseudo_label": ("reflect", "google-research/mixmatch libml/data.py augment_shift: REFLECT"),
    "mean_teacher": ("reflect", "google-research/mixmatch libml/data.py augment_shift: REFLECT"),
    "vat": ("reflect", "google-research/mixmatch libml/data.py augment_shift: REFLECT"),
    "supervised": ("reflect", "google-research/mixmatch libml/data.py augment_shift: REFLECT"),
}


def test_every_method_declares_its_official_crop_padding():
    assert set(OFFICIAL_CROP_PADDING) == set(method_names())
    for name, (padding, where) in OFFICIAL_CROP_PADDING.items():
        assert get_method(name).crop_padding == padding, (name, where)


def test_coteaching_does_not_augment_by_default():
    """The official Co-teaching main.py trains on transforms.ToTensor() images."""
    assert get_method("coteaching").Config().augment is False


@pytest.mark.parametrize("method,padding", [("erm", "zeros"), ("mixmatch", "reflect")])
def test_trainer_passes_the_methods_padding_to_the_pipeline(tmp_path, one_replica, digits,
                                                              method, padding):
    config = {"train_steps": 1}
    if method == "mixmatch":
        config["num_labeled"] = 100
    tr = Trainer(method, digits, RunConfig(model_dir=str(tmp_path)), config=config,
                 strategy=one_replica)
    assert tr.source.padding == padding
