"""STL-10's predefined labeled folds (official MixMatch splits), with TFDS's mock data."""
import numpy as np
import pytest

from mixmatch_tf.data import load, splits
from mixmatch_tf.methods import ConfigError
from mixmatch_tf.training import RunConfig, Trainer

N = 20
# TFDS position of the image at each position of train_X.bin: reversed order.
BINARY_TO_TFDS = np.arange(N)[::-1]
# Four folds of five binary positions: fold k = k, k + 4, ..., k + 16.
FOLDS = [[k + 4 * i for i in range(5)] for k in range(4)]


@pytest.fixture(scope="module")
def stl10(tmp_path_factory):
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=N):
        data = load.load_dataset("stl10", data_dir=str(tmp_path_factory.mktemp("tfds")))
    assert data.train_images.shape == (N, 96, 96, 3)
    assert len({im.tobytes() for im in data.train_images}) == N
    return data


def _distribution(folder, data, folds=FOLDS):
    """Writes fold_indices.txt and train_X.bin as the STL-10 archive lays them out."""
    binary = data.train_images[BINARY_TO_TFDS]           # [N, H, W, C] in binary order
    binary.transpose(0, 3, 2, 1).tofile(str(folder / "train_X.bin"))  # channel, column-major
    path = folder / "fold_indices.txt"
    path.write_text("".join(" ".join(str(i) for i in f) + " \n" for f in folds))
    return str(path)


@pytest.fixture
def five_per_fold(monkeypatch):
    monkeypatch.setitem(splits.PREDEFINED_FOLDS, "stl10", splits.LabelFolds(
        count=4, size=5, file="fold_indices.txt", images="train_X.bin", url="URL"))


def test_folds_are_mapped_to_the_tfds_order_by_image(tmp_path, stl10):
    folds = splits.read_label_folds(stl10, _distribution(tmp_path, stl10))
    # binary positions 1, 5, 9, 13, 17 hold TFDS images 18, 14, 10, 6, 2
    np.testing.assert_array_equal(folds[1], [18, 14, 10, 6, 2])
    binary = stl10.train_images[BINARY_TO_TFDS]
    for k in range(4):
        np.testing.assert_array_equal(stl10.train_images[folds[k]], binary[FOLDS[k]])


def test_fold_choice_follows_the_official_split(tmp_path, stl10, five_per_fold):
    path = _distribution(tmp_path, stl10)
    fold, idx = splits.labeled_fold(stl10, 5, seed=2, folds_file=path)
    assert fold == 2
    np.testing.assert_array_equal(idx, [1, 5, 9, 13, 17])   # 19 - [18, 14, 10, 6, 2], sorted
    assert splits.labeled_fold(stl10, 5, seed=6, folds_file=path)[0] == 2  # seed % 4 folds
    assert splits.labeled_fold(stl10, 5, seed=2, label_fold=0, folds_file=path)[0] == 0
    assert splits.labeled_fold(stl10, 5, seed=2, label_fold=-1, folds_file=path) is None
    assert splits.labeled_fold(stl10, 10, seed=2, folds_file=path) is None   # not the fold size
    with pytest.raises(splits.LabelFoldsError, match=r"must be in \[0, 4\)") as e:
        splits.labeled_fold(stl10, 5, seed=2, label_fold=4, folds_file=path)
    assert e.value.field == "label_fold"
    with pytest.raises(splits.LabelFoldsError, match="no fold to use"):
        splits.labeled_fold(stl10, 10, seed=2, label_fold=1, folds_file=path)


def test_missing_files_say_what_is_missing_and_where_to_get_it(tmp_path, stl10, five_per_fold):
    with pytest.raises(splits.LabelFoldsError, match="--label_folds_file=.*fold_indices.txt"
                       ".*URL.*--label_fold=-1") as e:
        splits.labeled_fold(stl10, 5, seed=1)
    assert e.value.field == "label_folds_file"
    path = _distribution(tmp_path, stl10)
    (tmp_path / "train_X.bin").unlink()
    with pytest.raises(splits.LabelFoldsError, match="train_X.bin is missing"):
        splits.labeled_fold(stl10, 5, seed=1, folds_file=path)
    other = tmp_path / "other"
    other.mkdir()
    np.zeros((N, 3, 96, 96), np.uint8).tofile(str(other / "train_X.bin"))
    (other / "fold_indices.txt").write_text("0 1 2 3 4\n")
    with pytest.raises(splits.LabelFoldsError, match="image 0 of .* is not among"):
        splits.labeled_fold(stl10, 5, seed=0, folds_file=str(other / "fold_indices.txt"))


def test_stl10_uses_the_fold_in_a_run_and_keeps_random_draws_elsewhere(tmp_path, stl10,
                                                                        one_replica,
                                                                        five_per_fold):
    path = _distribution(tmp_path, stl10)
    config = {"model": "small_cnn", "num_labeled": 5, "label_folds_file": path, "train_steps": 1}
    tr = Trainer("mixmatch", stl10, RunConfig(model_dir=str(tmp_path / "a"), seed=1),
                 config=config, strategy=one_replica)
    np.testing.assert_array_equal(tr.context.labeled_indices, [2, 6, 10, 14, 18])
    assert not set(tr.context.unlabeled_indices) & {2, 6, 10, 14, 18}
    with pytest.raises(ValueError, match="label_fold"):   # the saved split records its fold
        splits.labeled_split_for_run(stl10.train_labels, 5, 10, 1, str(tmp_path / "a"),
                                     fold=(3, np.arange(5)))
    with pytest.raises(ConfigError) as e:
        Trainer("mixmatch", stl10, RunConfig(model_dir=str(tmp_path / "b"), seed=1),
                config=dict(config, label_folds_file=None), strategy=one_replica)
    assert e.value.field == "label_folds_file"


def test_fold_flags(monkeypatch):
    import os
    from test_flags import ROOT, parse  # the flag parser of scripts/train.py
    monkeypatch.chdir(ROOT)
    _, config, _ = parse(["--flagfile=flags/presets/mixmatch_stl10_1000.cfg",
                          "--label_folds_file=/d/stl10_binary/fold_indices.txt", "--label_fold=3"])
    assert config.label_folds_file == "/d/stl10_binary/fold_indices.txt" and config.label_fold == 3
    assert os.path.basename(config.label_folds_file) == splits.PREDEFINED_FOLDS["stl10"].file
