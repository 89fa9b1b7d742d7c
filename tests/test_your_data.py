"""Your data, your model: arrays with an unlabelled pool, a folder with unlabeled/, every
label (--num_labeled=all), label budgets that are no multiple of the classes, a class
without labels, and co-trained networks from a user's model."""
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from mixmatch_tf.data import arrays, folders, load
from mixmatch_tf.methods import ConfigError
from mixmatch_tf.training import RunConfig, Trainer

NOISY = {"noise_type": "sym", "noise_rate": 0.5}


def user_factory():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, padding="same"),
                             keras.layers.ReLU(), keras.layers.Flatten(), keras.layers.Dense(10)])


def split_digits(digits, labeled=200):
    """(x, y) of the first ``labeled`` training digits, the rest as unlabelled images."""
    x, y = digits.train_images, digits.train_labels
    return x[:labeled], y[:labeled], x[labeled:]


# ----------------------------------------------------------------- arrays and npz
def test_arrays_with_an_unlabelled_pool_train_on_every_label_and_the_pool(tmp_path, one_replica,
                                                                         digits):
    x, y, pool = split_digits(digits)
    data = arrays.from_arrays(x, y, x_test=digits.test_images, y_test=digits.test_labels,
                               x_unlabeled=pool, name="my_digits")
    assert data.num_unlabeled == len(pool) and data.num_train == 200
    trainer = Trainer("mixmatch", data, RunConfig(model_dir=str(tmp_path), precision="float32"),
                      config={"num_labeled": "all", "train_steps": 1}, strategy=one_replica)
    ctx = trainer.context
    np.testing.assert_array_equal(ctx.labeled_indices, np.arange(200))
    np.testing.assert_array_equal(ctx.unlabeled_indices, 200 + np.arange(len(pool)))
    # the pool's images follow the training images in the training source
    fetched = trainer.source.fetch(tf.constant([0, 200], tf.int64), raw=True)["image"].numpy()
    np.testing.assert_array_equal(fetched, np.stack([x[0], pool[0]]))


def test_an_npz_with_x_unlabeled(tmp_path, digits):
    x, y, pool = split_digits(digits)
    np.savez(tmp_path / "d.npz", x=x, y=y, x_unlabeled=pool)
    data = load.load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert data.num_unlabeled == len(pool) and data.num_train + len(data.test_labels) == 200
    np.savez(tmp_path / "e.npz", x=x, y=y, x_unlabeled=pool[:, :4])
    with pytest.raises(ValueError, match=r"'x_unlabeled' images are \[4, 8, 1\] but 'x' images "
                                         r"are \[8, 8, 1\]"):
        load.load_dataset(f"npz:{tmp_path / 'e.npz'}")


def test_every_label_needs_a_pool_and_every_class_a_label(tmp_path, one_replica, digits):
    x, y, pool = split_digits(digits)
    no_pool = arrays.from_arrays(x, y)
    with pytest.raises(ConfigError, match="num_labeled: all: every label of arrays is used, so "
                                          "the unlabeled pool is its unlabelled images, and it "
                                          "has none"):
        Trainer("mixmatch", no_pool, RunConfig(model_dir=str(tmp_path / "a")),
                config={"num_labeled": "all"}, strategy=one_replica)
    # ten class names, labels of nine classes: class '9' is never labeled
    keep = y != 9
    names = [f"digit {c}" for c in range(10)]
    nine = arrays.from_arrays(x[keep], y[keep], x_unlabeled=pool, class_names=names)
    with pytest.raises(ConfigError, match="num_labeled: class 'digit 9' has no labeled example "
                                          "to learn it from"):
        Trainer("mixmatch", nine, RunConfig(model_dir=str(tmp_path / "b")),
                config={"num_labeled": "all"}, strategy=one_replica)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ConfigError, match="num_labeled: must be a number in \\[1, 1e9\\] or "
                                          "'all', got 'every'"):
        Trainer("mixmatch", digits, RunConfig(model_dir=str(tmp_path / "c")),
                config={"num_labeled": "every"}, strategy=one_replica)


def test_23_labels_over_10_classes_are_as_balanced_as_they_can_be_and_learn(
        tmp_path, one_replica, digits, caplog):
    import logging
    with caplog.at_level(logging.INFO, logger="absl"):
        trainer = Trainer("supervised", digits, RunConfig(model_dir=str(tmp_path), seed=4),
                          config={"num_labeled": 23, "train_steps": 300, "eval_every": 300,
                                  "ema_bn_examples": 512},
                          strategy=one_replica)
    counts = np.bincount(digits.train_labels[trainer.context.labeled_indices], minlength=10)
    assert sorted(counts.tolist()) == [2] * 7 + [3] * 3
    assert "23 labels over 10 classes: 3 for classes" in caplog.text
    assert trainer.fit(verbose=0)["test_error"] < 50.0  # chance: 90%


def test_the_flag_takes_all(tmp_path):
    from test_flags import parse
    _, config, _ = parse(["--method=mixmatch", "--num_labeled=all"])
    assert config.num_labeled == "all"
    _, config, _ = parse(["--method=mixmatch", "--num_labeled=23"])
    assert config.num_labeled == 23
    from absl import flags
    with pytest.raises(flags.IllegalFlagValueError, match="must be an integer or all"):
        parse(["--method=mixmatch", "--num_labeled=most"])


# ------------------------------------------------------------- a folder's unlabeled/
def make_folder_with_pool(root, digits, per_class=6, pool=10):
    for c in range(10):
        os.makedirs(os.path.join(root, f"c{c}"), exist_ok=True)
        for i, image in enumerate(digits.train_images[digits.train_labels == c][:per_class]):
            tf.io.write_file(os.path.join(root, f"c{c}", f"{i}.png"), tf.io.encode_png(image))
    os.makedirs(os.path.join(root, "unlabeled"))
    for i, image in enumerate(digits.test_images[:pool]):
        tf.io.write_file(os.path.join(root, "unlabeled", f"u{i}.png"), tf.io.encode_png(image))
    return str(root)


@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_folders_unlabeled_subfolder_is_the_pool_not_a_class(tmp_path, one_replica, digits,
                                                                stream):
    folder = make_folder_with_pool(tmp_path / "f", digits)
    data = load.load_dataset(f"folder:{folder}", stream=stream)
    assert data.class_names == tuple(f"c{c}" for c in range(10)) and data.num_unlabeled == 10
    trainer = Trainer("mixmatch", data, RunConfig(model_dir=str(tmp_path / "run"),
                                                  precision="float32"),
                      config={"num_labeled": "all", "train_steps": 1, "batch_size": 8,
                              "model": "small_cnn"}, strategy=one_replica)
    assert len(trainer.context.unlabeled_indices) == 10
    assert trainer.fit()["steps"] == 1
    pool = folders.list_unlabeled(folder)
    assert [os.path.basename(p) for p in pool] == sorted(f"u{i}.png" for i in range(10))


# ------------------------------------------------------------- a user's model
@pytest.mark.parametrize("method", ["dividemix", "coteaching"])
@pytest.mark.parametrize("kind", ["factory", "instance"])
def test_co_trained_networks_never_start_identical(tmp_path, one_replica, digits, method, kind):
    """A function gives each network its own initialisation; an instance is both networks'
    starting point, the second with its classification head drawn anew (seeded)."""
    given = user_factory()
    model = {"factory": user_factory, "instance": given}[kind]

    def networks(folder):
        trainer = Trainer(method, digits, RunConfig(model_dir=str(folder), precision="float32",
                                                    **NOISY),
                          config={"batch_size": 16}, strategy=one_replica, model=model)
        return [n.get_weights() for n in trainer.method.networks(trainer.state)]
    net1, net2 = networks(tmp_path / "a")
    differ = [not np.array_equal(a, b) for a, b in zip(net1, net2)]
    assert any(differ)
    if kind == "instance":
        for a, b in zip(net1, given.get_weights()):
            np.testing.assert_array_equal(a, b)  # the first: the given weights
        # the second: the given weights but its head's kernel (the bias starts at zeros)
        assert differ == [False] * (len(differ) - 2) + [True, False]
        assert all(np.array_equal(a, b) for a, b in zip(networks(tmp_path / "b")[1], net2))


# ------------------------------------------------------------- what the Trainer takes
def test_the_trainer_takes_arrays_a_dict_and_a_tf_data_dataset(tmp_path, one_replica, digits):
    x, y, pool = split_digits(digits)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    for i, data in enumerate([(x, y), (x, y, pool), {"x": x, "y": y, "x_unlabeled": pool},
                              ds, ds.batch(32),
                              ds.map(lambda a, b: {"image": a, "label": b})]):
        trainer = Trainer("erm", data, RunConfig(model_dir=str(tmp_path / str(i))),
                          config={"train_steps": 1}, strategy=one_replica)
        assert trainer.data.num_classes == 10
        assert trainer.data.num_train + len(trainer.data.test_labels) == 200
    with pytest.raises(TypeError, match="data must be a data set name, an ImageData, arrays"):
        Trainer("erm", 3, RunConfig(model_dir=str(tmp_path / "x")), strategy=one_replica)
    # and it learns from a tf.data.Dataset as from anything else
    full = tf.data.Dataset.from_tensor_slices((digits.train_images, digits.train_labels))
    metrics = Trainer("erm", full.batch(100), RunConfig(model_dir=str(tmp_path / "learn")),
                      config={"train_steps": 200, "eval_every": 200},
                      strategy=one_replica).fit(verbose=0)
    assert metrics["test_error"] < 20.0  # its held-out fifth


def test_a_tf_data_dataset_with_test_and_unlabelled_sets(digits):
    from mixmatch_tf.data import from_tf_dataset
    x, y, pool = split_digits(digits)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(50)
    test = tf.data.Dataset.from_tensor_slices({"image": digits.test_images,
                                               "label": digits.test_labels})
    unlabeled = tf.data.Dataset.from_tensor_slices(pool).batch(64)
    data = from_tf_dataset(train, test=test, unlabeled=unlabeled, name="my_tf_data")
    np.testing.assert_array_equal(data.train_images, x)
    np.testing.assert_array_equal(data.test_labels, digits.test_labels)
    np.testing.assert_array_equal(data.unlabeled_images, pool)
    with pytest.raises(ValueError, match="my_tf_data: the dataset repeats forever"):
        from_tf_dataset(train.repeat(), name="my_tf_data")
    with pytest.raises(ValueError, match="more than 0.0 GiB of images, too many to hold in "
                                         "memory: write them as a folder of images"):
        from_tf_dataset(train, max_bytes=1000)
    with pytest.raises(ValueError, match="elements must be \\(image, label\\) pairs"):
        from_tf_dataset(tf.data.Dataset.from_tensor_slices(x))
    floats = tf.data.Dataset.from_tensor_slices((x / 255.0, y))
    with pytest.raises(ValueError, match="images must be uint8 pixels 0-255"):
        from_tf_dataset(floats)


# ------------------------------------------------------------- defaults for your data
def test_defaults_are_sized_to_a_users_data_and_the_papers_stay_the_papers(tmp_path, digits):
    """A data set of no paper's table gets the digits' small-data settings, a network by
    its image size and counts from its size; the papers' data sets keep the papers'."""
    import math
    from mixmatch_tf.data import from_arrays
    from mixmatch_tf.methods import get_method, resolve_config
    x, y = digits.train_images, digits.train_labels
    pool = np.zeros((10_000, 8, 8, 1), np.uint8)
    mine = from_arrays(x, y, x_unlabeled=pool, name="mine")
    config = resolve_config(get_method("mixmatch"), mine, {})
    steps = math.ceil(75 * 10_000 / 64)  # 75 passes over the pool: 11,719 steps
    assert (config.model, config.num_labeled, config.train_steps, config.rampup_steps,
            config.eval_every) == ("small_cnn", "all", steps, steps // 3, steps // 30)
    no_pool = resolve_config(get_method("mean_teacher"), from_arrays(x, y), {})
    assert no_pool.num_labeled == round(0.1 * 1037) and no_pool.train_steps == 1500
    assert no_pool.consistency_weight == 10.0  # the digits' small-data weight, not 50
    dividemix = resolve_config(get_method("dividemix"), mine, {})
    assert dividemix.epochs == 60.0  # not 300
    # each network's epoch as long as ERM's, the decay halfway after the warm-up
    assert (dividemix.min_steps_per_epoch, dividemix.lr_decay_at) == ("all", None)
    assert resolve_config(get_method("mixmatch"), mine, {"train_steps": 7}).train_steps == 7
    big = from_arrays(np.zeros((40, 32, 32, 3), np.uint8), np.arange(40) % 4, name="big")
    assert resolve_config(get_method("dividemix"), big, {}).model == "preact_resnet18"
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=4):
        cifar = load.load_dataset("cifar10", data_dir=str(tmp_path))
    paper = resolve_config(get_method("mixmatch"), cifar, {})
    assert (paper.train_steps, paper.num_labeled, paper.model) == (1 << 20, 4000, None)
    official = resolve_config(get_method("dividemix"), cifar, {})
    assert (official.min_steps_per_epoch, official.lr_decay_at) == (20, (0.5,))


# ------------------------------------------------------------- the README's examples
def readme_example(name):
    """The code block after ``<!-- example: name -->`` in the README."""
    from conftest import ROOT
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    after = text.split(f"<!-- example: {name} -->", 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1]


@pytest.mark.parametrize("name", ["mixmatch_arrays", "dividemix_noisy"])
def test_the_readmes_python_examples_run_and_learn(tmp_path, monkeypatch, name, capsys):
    monkeypatch.chdir(tmp_path)  # the examples write runs/ and exports/ where they run
    namespace = {}
    exec(compile(readme_example(name), f"README.md:{name}", "exec"), namespace)
    metrics = namespace["metrics"]
    assert metrics["complete"] and metrics["test_error"] < 30.0, metrics["test_error"]
    assert capsys.readouterr().out.startswith("plan: ")
    if name == "mixmatch_arrays":
        assert os.path.isfile(tmp_path / "exports" / "arrays" / "1" / "saved_model.pb")
    else:  # the user's own noisy labels: nothing to measure the division against
        import json
        assert metrics["division_reference"] == "none: the labels are taken as given"
        written = open(tmp_path / "runs" / "noisy" / "metrics.json").read()
        assert not re.search(r'"net\d_(auc|precision|recall)"', written)
        assert "loss_histograms" not in metrics and metrics["division_history"]
        assert all(e["net1_labeled"] > 0 for e in json.loads(written)["division_history"])
        issues = metrics["label_issues"]  # which labels look wrong, with nothing made up
        assert 0 < issues["flagged"] < issues["examples"] and "precision" not in issues
        assert os.path.isfile(tmp_path / "runs" / "noisy" / "label_issues.csv")
        from conftest import summary_tags  # histograms, none split by a truth
        tags = summary_tags(str(tmp_path / "runs" / "noisy" / "train"))
        assert "division_hist/net1_clean_prob" in tags and "division/net1_labeled" in tags
        assert not [t for t in tags if t.endswith("_of_noisy") or t.endswith("_auc")], tags


def test_the_readmes_folder_example_runs_from_the_command_line_and_learns(tmp_path, digits):
    """my_images/train/<class>, my_images/test/<class>, my_images/unlabeled/: the README's
    commands, train.py capped at 300 steps to keep the suite short."""
    import json
    import shlex
    from conftest import run_script
    folder = tmp_path / "my_images"
    for split, images, labels in (("train", digits.train_images[:200], digits.train_labels[:200]),
                                  ("test", digits.test_images, digits.test_labels)):
        for i, (image, label) in enumerate(zip(images, labels)):
            os.makedirs(folder / split / f"digit{label}", exist_ok=True)
            tf.io.write_file(str(folder / split / f"digit{label}" / f"{i}.png"),
                             tf.io.encode_png(image))
    os.makedirs(folder / "unlabeled")
    for i, image in enumerate(digits.train_images[200:800]):
        tf.io.write_file(str(folder / "unlabeled" / f"{i}.png"), tf.io.encode_png(image))
    commands = readme_example("folder_cli").replace("\\\n", " ").splitlines()
    commands = [c for c in commands if c.startswith("python ")]
    assert len(commands) == 2
    for command in commands:
        args = shlex.split(command.replace("folder:my_images", f"folder:{folder}").replace(
            "=runs/", f"={tmp_path}/runs/").replace("=exports", f"={tmp_path}/exports"))[1:]
        if args[0] == "scripts/train.py":
            args.append("--train_steps=300")
        out = run_script(args, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        if args[0] == "scripts/train.py":  # its plan first, with settings sized to the data
            assert out.stdout.startswith(
                f"plan: mixmatch on folder:{folder}: 200 labeled + 600 unlabeled examples of "
                "8x8x1, 10 classes; small_cnn (")
            # the last line: the result and where it is; no TensorFlow start-up line
            last = out.stdout.strip().splitlines()[-1]
            assert re.fullmatch(rf"done: test error [\d.]+%.* after 300 steps; run folder "
                                rf"{tmp_path}/runs/my_images; metrics {tmp_path}/runs/"
                                rf"my_images/metrics.json", last), last
            assert out.stderr == "", out.stderr[-2000:]
    metrics = json.load(open(tmp_path / "runs" / "my_images" / "metrics.json"))
    assert metrics["test_error"] < 30.0, metrics["test_error"]
    assert metrics["config"]["num_labeled"] == "all"
    assert os.listdir(tmp_path / "exports")
