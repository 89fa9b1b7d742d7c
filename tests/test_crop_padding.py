"""Each method's random crop pads as the official code it follows."""
import pytest

from mixmatch_tf.methods import get_method, method_names
from mixmatch_tf.training import RunConfig, Trainer

# How the random crop of each official repository pads: TF's augment_shift pads by
# reflection; torchvision's RandomCrop(padding=4) fills the uint8 image with zeros.
REPOSITORY_PADDING = {
    "google-research/mixmatch": "reflect",
    "facebookresearch/mixup-cifar10": "zeros",
    "LiJunnan1992/DivideMix": "zeros",
    "bhanML/Co-teaching": "zeros",
}


@pytest.mark.parametrize("name", method_names())
def test_every_method_declares_its_crop_padding_and_the_code_it_follows(name):
    """Read from each method's own declaration (a new method file needs no edit here);
    where the declared repository is one of the papers', its padding is pinned."""
    method = get_method(name)
    assert method.crop_padding in ("reflect", "zeros"), name
    repository = method.crop_padding_from.split()[0]
    assert "/" in repository and ":" in method.crop_padding_from, method.crop_padding_from
    if repository in REPOSITORY_PADDING:
        assert method.crop_padding == REPOSITORY_PADDING[repository], (name, repository)


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
