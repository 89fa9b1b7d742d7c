"""Streamed data: paths not pixels, ImageNet crops, the same stream on resume and on any
split of replicas over workers, unreadable files, TFDS through mock_data, and
scripts/train.py on a generated ImageNet-layout folder, killed and resumed."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, checkpoint_weights, run_script
from mixmatch_tf.data import augment, dataset, folders, load, streaming
from mixmatch_tf.data import tfds as tfds_data
from mixmatch_tf.data.pipeline import ArraySource, Stream, eval_dataset, train_dataset
from mixmatch_tf.data.preprocess import Normalization

IDENTITY = Normalization(mean=(0.0,) * 3, std=(1.0,) * 3)


def make_imagenet_folder(root, classes=3, train=6, val=2, seed=0, sizes=(20, 40)):
    """DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG of random sizes; class c is tinted."""
    rng = np.random.RandomState(seed)
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            folder = os.path.join(root, split, f"n{c:08d}")
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                h, w = rng.randint(*sizes), rng.randint(*sizes)
                tint = np.array([80 * c, 120, 230 - 80 * c], np.float64)
                image = np.clip(rng.rand(h, w, 3) * 40 + tint, 0, 255).astype(np.uint8)
                tf.io.write_file(os.path.join(folder, f"n{c:08d}_{i}.JPEG"),
                                 tf.io.encode_jpeg(image, quality=95))
    return str(root)


@pytest.fixture(scope="module")
def imagenet_folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"))


# --------------------------------------------------------------------- ImageNet crops
def test_resized_crop_box_follows_torchvision_with_hand_values():
    # 100 x 200 image. Attempt 1: area 0.08 + 0.5 * 0.92 = 0.54 of 20000 = 10800 at
    # ratio exp(0) = 1 gives 104 x 104, taller than 100: rejected. Attempt 2: area
    # 0.08 * 20000 = 1600 gives 40 x 40, placed at floor(0.5 * 61) = 30,
    # floor(0.5 * 161) = 80.
    draws = tf.constant([[0.5, 0.5, 0.25, 0.75], [0.0, 0.5, 0.5, 0.5]] + [[0.0] * 4] * 8)
    assert augment.resized_crop_box(100, 200, draws).numpy().tolist() == [30, 80, 40, 40]
    # Aspect ratio 4/3 at u = 1: w = round(sqrt(1600 * 4/3)) = 46, h = round(sqrt(1200)) = 35.
    draws = tf.constant([[0.0, 1.0, 0.0, 1.0 - 1e-7]] + [[0.0] * 4] * 9)
    assert augment.resized_crop_box(100, 200, draws).numpy().tolist() == [0, 154, 35, 46]
    # Nothing fits a 10 x 100 strip (32 x 32 each time): the central crop with the
    # ratio clamped to 4/3: h 10, w round(13.33) = 13, left floor(87 / 2) = 43.
    draws = tf.constant([[1.0, 0.5, 0.0, 0.0]] * 10)
    assert augment.resized_crop_box(10, 100, draws).numpy().tolist() == [0, 43, 10, 13]
    # A tall 100 x 10 strip: w 10, h round(10 / 0.75) = 13, top floor(87 / 2) = 43.
    assert augment.resized_crop_box(100, 10, draws).numpy().tolist() == [43, 0, 13, 10]


def test_resized_crops_cover_8_to_100_percent_at_ratios_3_4_to_4_3():
    boxes = np.array([augment.resized_crop_box(
        300, 400, augment.sample_resized_crop_draws(tf.constant([i, 7], tf.int64))).numpy()
        for i in range(120)])
    top, left, h, w = boxes.T
    assert np.all(top >= 0) and np.all(left >= 0) and np.all(top + h <= 300)
    assert np.all(left + w <= 400)
    area, ratio = h * w / 120000.0, w / h
    assert area.min() >= 0.07 and area.max() <= 1.0 and area.max() > 0.6
    assert ratio.min() >= 0.74 and ratio.max() <= 1.35 and ratio.min() < 0.8 < 1.25 < ratio.max()


def test_eval_transform_resizes_the_shorter_side_and_takes_the_central_crop():
    # 300 x 400 -> 256 x int(256 * 4 / 3) = 341; crop top round(16) = 16, left
    # round(58.5) = 58 (halves to even, as Python's round in torchvision).
    rows, cols = augment.eval_resize_shape(300, 400, 224)
    assert (int(rows), int(cols)) == (256, 341)
    assert [int(v) for v in augment.central_crop_offsets(rows, cols, 224)] == [16, 58]
    rows, cols = augment.eval_resize_shape(500, 375, 224)
    assert (int(rows), int(cols)) == (341, 256)
    # A column ramp stays a ramp: the central crop of a horizontal gradient.
    ramp = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (32, 1, 3))
    out = streaming.eval_image(tf.io.encode_png(ramp), (14, 14, 3), augment.RESIZE_CENTRAL_CROP)
    row = out.numpy()[7, :, 0].astype(int)
    assert out.shape == (14, 14, 3) and np.all(np.diff(row) > 0)


def test_jpeg_crops_decode_only_the_crop_and_equal_decoding_everything():
    image = np.random.RandomState(0).randint(0, 256, (50, 70, 3)).astype(np.uint8)
    edges = 0
    for subsampled in (False, True):
        jpeg = tf.io.encode_jpeg(image, quality=90, chroma_downsampling=subsampled)
        png = tf.io.encode_png(tf.io.decode_jpeg(jpeg, channels=3))  # same pixels, other path
        for i in range(6):
            seed = tf.constant([i, 3], tf.int64)
            a, b = (streaming.train_image(encoded, seed, 0, 1, (24, 24, 3),
                                          augment.RESIZE_CENTRAL_CROP,
                                          augment.RESIZED_CROP_FLIP, "zeros").numpy()
                    for encoded in (jpeg, png))
            if not subsampled:
                np.testing.assert_array_equal(a, b)
                continue
            # 4:2:0 chroma: libjpeg upsamples the chroma at the edge of the decoded
            # window from the window alone, so the crop's first or last column may
            # differ (and, after the antialiased resize, up to two columns of the
            # output's edge: 0-1 or 22-23 over 40 seeds); nothing else does.
            np.testing.assert_array_equal(a[:, 2:-2], b[:, 2:-2])
            edges += int(np.any(a != b))
    assert edges > 0  # the case is exercised


# ----------------------------------------------------------------------- the source
def test_a_streamed_folder_holds_file_paths_not_pixels(imagenet_folder):
    data = load.load_dataset(f"folder:{imagenet_folder}", stream="true", image_size=16)
    assert isinstance(data, dataset.StreamedData)
    assert data.train_images is None and data.test_images is None
    assert (data.num_train, data.num_test, data.image_shape) == (18, 6, (16, 16, 3))
    assert data.train_files[0].endswith("train/n00000000/n00000000_0.JPEG")
    assert data.test_files[-1].endswith("val/n00000002/n00000002_1.JPEG")
    assert data.train_labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    train, test = data.sources(IDENTITY)
    for source in (train, test):
        # what the source holds: the paths, the labels and scalars -- no pixels
        for name, value in vars(source).items():
            if isinstance(value, (np.ndarray, tf.Tensor)):
                assert np.asarray(value).dtype.kind in "UiO" or value.dtype in (
                    tf.string, tf.int64), name
                assert np.asarray(value).size == source.size, name
    assert train.paths.tolist() == data.train_files.tolist()


def test_the_listing_refuses_what_the_in_memory_loader_refuses(tmp_path):
    make_imagenet_folder(tmp_path, classes=1, train=2, val=1)
    os.makedirs(tmp_path / "train" / "n00000000" / "folder.JPEG")
    with pytest.raises(ValueError, match="folder.JPEG: is a folder, not an image"):
        folders.list_image_folder(str(tmp_path / "train"))
    os.rmdir(tmp_path / "train" / "n00000000" / "folder.JPEG")
    os.symlink(tmp_path / "gone.JPEG", tmp_path / "train" / "n00000000" / "link.JPEG")
    with pytest.raises(ValueError, match="link.JPEG: is a broken symbolic link"):
        load.load_dataset(f"folder:{tmp_path}", stream="true")
    os.makedirs(tmp_path / "empty" / "a")
    with pytest.raises(ValueError, match="class folder holds no images"):
        folders.list_image_folder(str(tmp_path / "empty"))


def test_auto_streams_images_of_several_sizes_or_over_the_memory_budget(tmp_path,
                                                                        imagenet_folder):
    auto = load.load_dataset(f"folder:{imagenet_folder}")  # sizes differ
    assert isinstance(auto, dataset.StreamedData) and auto.image_size == 224
    same = make_imagenet_folder(tmp_path / "same", classes=2, train=3, val=1, sizes=(12, 13))
    data = load.load_dataset(f"folder:{same}")
    assert isinstance(data, dataset.ImageData) and data.train_images.shape == (6, 12, 12, 3)
    assert data.num_train == 6 and len(data.test_labels) == 2  # train/ and val/ are the splits
    paths, _, _ = folders.list_image_folder(os.path.join(same, "train"))
    assert folders.should_stream(paths, budget=6 * 12 * 12 * 3)[0] is False
    stream, why = folders.should_stream(paths, budget=6 * 12 * 12 * 3 - 1)
    assert stream and "over the" in why
    with pytest.raises(ValueError, match="--image_size=32 sets the crop size of streamed data"):
        load.load_dataset(f"folder:{same}", image_size=32)
    with pytest.raises(ValueError, match="images differ in shape.*--stream=true"):
        load.load_dataset(f"folder:{imagenet_folder}", stream="false")


def make_folder(root, classes=3, per_class=6, shape=(12, 10, 3), seed=0):
    """root/<class>/<i>.png: random images of one size (non-square)."""
    rng = np.random.RandomState(seed)
    for c in range(classes):
        os.makedirs(os.path.join(root, f"c{c}"), exist_ok=True)
        for i in range(per_class):
            image = rng.randint(0, 256, shape).astype(np.uint8)
            tf.io.write_file(os.path.join(root, f"c{c}", f"{i}.png"), tf.io.encode_png(image))
    return str(root)


def test_a_folder_of_one_size_is_the_same_data_in_memory_and_streamed(tmp_path):
    folder = make_folder(tmp_path / "f")
    memory = load.load_dataset(f"folder:{folder}", stream="false")
    streamed = load.load_dataset(f"folder:{folder}", stream="true")
    assert isinstance(memory, dataset.ImageData)
    assert isinstance(streamed, dataset.StreamedData)
    # the network's input and the policy: the images' own, wherever they are kept
    assert memory.image_shape == streamed.image_shape == (12, 10, 3)
    assert memory.augmentation == streamed.augmentation == folders.FOLDER_AUGMENTATION
    assert memory.resize == streamed.resize == augment.RESIZE_STRETCH
    assert streamed.options()["augmentation"] == "pad_crop_flip"
    assert streamed.train_labels.tolist() == memory.train_labels.tolist()
    # --image_size (or images of several sizes) gives square inputs and ImageNet's policy
    square = load.load_dataset(f"folder:{folder}", stream="true", image_size=8)
    assert square.image_shape == (8, 8, 3) and square.augmentation == "resized_crop_flip"
    # a flag chooses another policy for either path
    flipless = load.load_dataset(f"folder:{folder}", stream="true", augmentation="pad_crop")
    assert flipless.augmentation == "pad_crop"
    with pytest.raises(ValueError, match="--augmentation='crop': must be one of pad_crop"):
        load.load_dataset(f"folder:{folder}", augmentation="crop")
    with pytest.raises(ValueError, match="--augmentation=pad_crop: wine holds feature vectors"):
        load.load_dataset("wine", augmentation="pad_crop")


@pytest.mark.parametrize("policy", augment.POLICIES)
def test_in_memory_and_streamed_reading_augment_a_folder_alike(tmp_path, policy):
    """Row r, view v of step s: the same crop and flip whether the folder is in memory or
    streamed, for every policy (so --stream=auto's choice by memory changes nothing)."""
    folder = make_folder(tmp_path / "f")
    memory = load.load_dataset(f"folder:{folder}", stream="false", augmentation=policy)
    streamed = load.load_dataset(f"folder:{folder}", stream="true", augmentation=policy)
    a = ArraySource(memory.train_images, memory.train_labels, IDENTITY, augmentation=policy,
                    padding="zeros")
    b = streamed.sources(IDENTITY, padding="zeros")[0]
    for views in (None, 2):
        streams = {"x": Stream(indices=np.arange(memory.num_train), batch_size=6, views=views)}
        ours = [s["x"] for s in train_dataset(a, streams, seed=3, salt=1).take(3)]
        theirs = [s["x"] for s in train_dataset(b, streams, seed=3, salt=1).take(3)]
        for x, y in zip(ours, theirs):
            np.testing.assert_array_equal(x["index"], y["index"])
            np.testing.assert_array_equal(x["image"], y["image"])
        raw = memory.train_images[ours[0]["index"].numpy()].astype(np.float32)
        image = ours[0]["image"].numpy()
        if views:
            assert image.shape == (6, 2, 12, 10, 3)
            assert (policy == "none") == np.array_equal(image[:, 0], image[:, 1])
        else:
            assert (policy == "none") == np.array_equal(image, raw)


def test_a_folder_trains_to_the_same_weights_in_memory_and_streamed(tmp_path, one_replica):
    """mixup (inputs mixed inside tf.data) on one replica: the same run either way."""
    from conftest import checkpoint_weights
    from mixmatch_tf.training import RunConfig, Trainer
    folder = make_folder(tmp_path / "f", per_class=8)
    weights = []
    for stream in ("false", "true"):
        data = load.load_dataset(f"folder:{folder}", stream=stream)
        run = RunConfig(model_dir=str(tmp_path / stream), precision="float32", steps_per_call=1)
        Trainer("mixup", data, run, strategy=one_replica,
                config={"model": "small_cnn", "batch_size": 6, "train_steps": 4,
                        "eval_every": 4}).fit()
        weights.append(checkpoint_weights(str(tmp_path / stream)))
    assert weights[0].keys() == weights[1].keys() and weights[0]
    for k in weights[0]:
        np.testing.assert_array_equal(weights[0][k], weights[1][k], err_msg=k)


def test_hidden_entries_are_neither_classes_nor_images(tmp_path):
    folder = make_folder(tmp_path / "f", classes=2, per_class=3)
    os.makedirs(tmp_path / "f" / ".thumbnails")
    tf.io.write_file(str(tmp_path / "f" / ".thumbnails" / "x.png"),
                     tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)))
    (tmp_path / "f" / "c0" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    os.makedirs(tmp_path / "f" / "c1" / ".ipynb_checkpoints.png")
    for stream in ("false", "true"):
        data = load.load_dataset(f"folder:{folder}", stream=stream)
        assert data.class_names == ("c0", "c1")
        assert data.num_train + len(data.test_labels) == 6


def test_grey_and_alpha_images_are_read_as_grey_either_way(tmp_path):
    rng = np.random.RandomState(0)
    for c in range(2):
        os.makedirs(tmp_path / "f" / f"c{c}")
        for i in range(4):
            image = rng.randint(0, 256, (6, 5, 2)).astype(np.uint8)  # grey + alpha
            tf.io.write_file(str(tmp_path / "f" / f"c{c}" / f"{i}.png"), tf.io.encode_png(image))
    memory = load.load_dataset(f"folder:{tmp_path / 'f'}", stream="false")
    streamed = load.load_dataset(f"folder:{tmp_path / 'f'}", stream="true")
    assert memory.image_shape == streamed.image_shape == (6, 5, 1)
    identity = Normalization(mean=(0.0,), std=(1.0,))
    pixels = np.concatenate([b["image"].numpy() for b in eval_dataset(
        streamed.sources(identity)[0], 6)])[:memory.num_train]
    np.testing.assert_array_equal(pixels, memory.train_images.astype(np.float32))
    # what npz arrays and the served model's bytes signature take: 1, 3 or 4 channels
    np.savez(tmp_path / "two.npz", x=np.zeros((4, 6, 5, 2), np.uint8), y=[0, 1, 0, 1])
    with pytest.raises(ValueError, match="C in 1, 3, 4"):
        load.load_dataset(f"npz:{tmp_path / 'two.npz'}")


def test_the_policy_is_part_of_the_runs_identity(tmp_path, one_replica):
    from mixmatch_tf.methods import ConfigError
    from mixmatch_tf.training import RunConfig, Trainer
    folder = make_folder(tmp_path / "f")

    def trainer(stop, **options):
        data = load.load_dataset(f"folder:{folder}", stream="false", **options)
        run = RunConfig(model_dir=str(tmp_path / "run"), precision="float32", stop_at_step=stop,
                        steps_per_call=1)
        return Trainer("erm", data, run, strategy=one_replica,
                       config={"model": "small_cnn", "batch_size": 6})
    trainer(1).fit()
    assert json.load(open(tmp_path / "run" / "run.json"))["augmentation"] == "pad_crop_flip"
    with pytest.raises(ConfigError, match="augmentation='pad_crop_flip', not 'pad_crop'"):
        trainer(2, augmentation="pad_crop")
    # a run folder from before the policy was named trained an in-memory folder unflipped
    settings = json.load(open(tmp_path / "run" / "run.json"))
    del settings["augmentation"], settings["format"]
    (tmp_path / "run" / "run.json").write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match="augmentation='pad_crop', not 'pad_crop_flip'"):
        trainer(2)
    assert int(trainer(2, augmentation="pad_crop").step) == 1


def _batches(source, start_step, count, context=None, batch_size=6):
    stream = {"train": Stream(indices=np.arange(source.size), batch_size=batch_size)}
    ds = train_dataset(source, stream, seed=3, salt=0, start_step=start_step,
                       input_context=context)
    return [{k: v.numpy() for k, v in b["train"].items()} for b in ds.take(count)]


def test_the_stream_is_a_function_of_seed_and_step_and_of_nothing_else(imagenet_folder):
    data = load.load_dataset(f"folder:{imagenet_folder}", stream="true", image_size=16)
    source = data.sources(IDENTITY)[0]
    run = _batches(source, 0, 5)
    resumed = _batches(source, 3, 2)  # a resume at step 3 (an epoch is 3 steps of 6)
    for a, b in zip(run[3:], resumed):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # each epoch is a permutation of the 18 files; crops differ from epoch to epoch
    first = np.concatenate([b["index"] for b in run[:3]])
    assert sorted(first) == list(range(18))
    assert not np.array_equal(run[0]["image"], run[3]["image"])
    # two replicas: one pipeline making both slices, or two pipelines (two workers)
    # making one each, give the very same slices
    one = _batches(source, 0, 4, tf.distribute.InputContext(1, 0, 2))
    workers = [_batches(source, 0, 2, tf.distribute.InputContext(2, i, 2)) for i in range(2)]
    for step in range(2):
        for replica in range(2):
            for k in one[0]:
                np.testing.assert_array_equal(one[2 * step + replica][k],
                                              workers[replica][step][k], err_msg=k)
        # and the two slices are the halves of the one-replica batch
        for k in ("index", "image", "label"):
            np.testing.assert_array_equal(
                np.concatenate([one[2 * step][k], one[2 * step + 1][k]]), run[step][k])


def test_several_views_unlabeled_streams_and_extras(imagenet_folder):
    """What the SSL methods ask of a stream: K augmented views, no labels, extras by index."""
    data = load.load_dataset(f"folder:{imagenet_folder}", stream="true", image_size=8)
    source = data.sources(IDENTITY)[0]
    extra = np.arange(18, dtype=np.float32) * 10
    streams = {"x": Stream(indices=np.arange(0, 18, 2), batch_size=4),
               "u": Stream(indices=np.arange(1, 18, 2), batch_size=4, views=2,
                           with_labels=False, extras={"w": extra})}
    batch = next(iter(train_dataset(source, streams, seed=0, salt=1)))
    x, u = batch["x"], batch["u"]
    assert x["image"].shape == (4, 8, 8, 3) and np.all(x["index"].numpy() % 2 == 0)
    assert u["image"].shape == (4, 2, 8, 8, 3) and "label" not in u
    assert np.all(u["index"].numpy() % 2 == 1)
    np.testing.assert_array_equal(u["w"].numpy(), extra[u["index"].numpy()])
    assert not np.array_equal(u["image"][:, 0].numpy(), u["image"][:, 1].numpy())


def test_an_unreadable_file_is_named_replaced_and_counted(tmp_path, capfd):
    root = make_imagenet_folder(tmp_path / "d", classes=2, train=4, val=2)
    bad = os.path.join(root, "train", "n00000001", "n00000001_2.JPEG")
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not a jpeg")
    truncated = os.path.join(root, "val", "n00000000", "n00000000_1.JPEG")
    with open(truncated, "r+b") as f:
        f.truncate(40)
    data = load.load_dataset(f"folder:{root}", stream="true", image_size=16)
    source, test = data.sources(IDENTITY)
    batches = _batches(source, 0, 4, batch_size=4)  # two epochs of the 8 files
    bad_index = data.train_files.tolist().index(bad)
    drawn = [b for b in batches if b["unreadable"]]
    assert len(drawn) == 2 and all(int(b["unreadable"]) == 1 for b in drawn)  # once per epoch
    for b in batches:
        assert b["image"].shape == (4, 16, 16, 3) and bad_index not in b["index"]
        # labels follow the images: each row is a real example, label and index agree
        assert np.array_equal(b["label"], data.train_labels[b["index"]])
    assert bad in capfd.readouterr().err
    passes = list(eval_dataset(test, 3))
    mask = np.concatenate([b["mask"].numpy() for b in passes])
    index = np.concatenate([b["index"].numpy() for b in passes])
    assert mask.tolist() == [True, False, True, True, False, False]  # unreadable, padding
    assert index[1] == data.test_files.tolist().index(truncated)
    assert sum(int(b["unreadable"]) for b in passes) == 1
    assert truncated in capfd.readouterr().err


# ----------------------------------------------------------------------------- TFDS
def test_imagenet2012_streams_through_tfds_and_says_how_to_build_it(tmp_path):
    import tensorflow_datasets as tfds
    with pytest.raises(dataset.DataNotPreparedError) as e:
        load.load_dataset("imagenet2012", data_dir=str(tmp_path))
    message = str(e.value)
    for part in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "--manual_dir",
                 "tfds build imagenet2012", str(tmp_path), "--dataset=folder:DIR"):
        assert part in message
    tf.random.set_seed(0)  # as the trainer's seed 0 does: the stream must not mind
    with tfds.testing.mock_data(num_examples=10):
        data = load.load_dataset("imagenet2012", data_dir=str(tmp_path), image_size=16)
        assert isinstance(data, dataset.StreamedData) and data.train_labels is None
        assert (data.num_train, data.num_test, data.num_classes) == (10, 10, 1000)
        source, test = data.sources(IDENTITY)
        run = _batches(source, 0, 4, batch_size=4)
        resumed = _batches(source, 2, 2, batch_size=4)
        for a, b in zip(run[2:], resumed):
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        first = np.concatenate([b["index"] for b in run[:2]])
        assert len(set(first)) == 8 and first.max() < 10 and list(first) != list(range(8))
        later = np.concatenate([b["index"] for b in run[2:]])  # 10..15: epoch 1 from index 2
        assert len(set(later[2:])) == 6
        assert all(b["image"].shape == (4, 16, 16, 3) for b in run)
        passes = list(eval_dataset(test, 4))
        assert np.concatenate([b["index"].numpy() for b in passes])[:10].tolist() == list(
            range(10))
        assert np.concatenate([b["mask"].numpy() for b in passes]).sum() == 10
        with pytest.raises(ValueError, match="whole split"):  # no random access
            train_dataset(source, {"t": Stream(indices=np.arange(5), batch_size=4)}, seed=0,
                          salt=0)


def test_auto_streams_a_large_tfds_set_unless_it_has_splits_only_memory_reads(tmp_path,
                                                                              monkeypatch):
    import tensorflow_datasets as tfds
    monkeypatch.setattr(tfds_data, "should_stream", lambda *a: (True, "large"))
    with tfds.testing.mock_data(num_examples=4):
        cifar = load.load_dataset("cifar10", data_dir=str(tmp_path), image_size=8)
        stl = load.load_dataset("stl10", data_dir=str(tmp_path))  # + unlabelled split
        with pytest.raises(ValueError, match="only the in-memory path reads"):
            load.load_dataset("stl10", data_dir=str(tmp_path), stream="true")
    assert isinstance(cifar, dataset.StreamedData) and cifar.num_train == 4
    assert cifar.image_shape == (8, 8, 3) and cifar.augmentation == "pad_crop_flip"
    assert isinstance(stl, dataset.ImageData) and stl.unlabeled_images is not None
    # Streamed for its size, CIFAR stays CIFAR: its own 32 x 32 images, its own policy.
    with tfds.testing.mock_data(num_examples=4):
        cifar = load.load_dataset("cifar10", data_dir=str(tmp_path))
    assert isinstance(cifar, dataset.StreamedData) and cifar.resize == "stretch"
    assert cifar.image_shape == (32, 32, 3) and cifar.augmentation == "pad_crop_flip"


# --------------------------------------------------------------------- the script
def _train_args(folder, **extra):
    args = {"method": "mixup", "dataset": f"folder:{folder}", "model": "small_cnn",
            "image_size": 16, "batch_size": 6, "train_steps": 4, "checkpoint_every": 2,
            "steps_per_call": 2, "eval_every": 4, "eval_batch_size": 6, "seed": 2,
            "precision": "float32"}  # one precision for runs compared across processes
    args.update(extra)
    return ["scripts/train.py"] + [f"--{k}={v}" for k, v in args.items()]


def test_train_script_streams_a_folder_and_resumes_after_a_kill(tmp_path, imagenet_folder):
    """Killed after step 2 of 4 (18 files, 3 batches an epoch: the resumed steps cross
    into the second epoch), resumed, it ends with the uninterrupted run's weights. Three
    start-ups in all (the uninterrupted run beside the killed one); one evaluation
    (step 4), so the killed run still has that to trace when its checkpoint appears."""
    args = _train_args(imagenet_folder)
    killed = tmp_path / "killed"
    # the uninterrupted run and the one to kill side by side
    full = subprocess.Popen([sys.executable] + args + [f"--model_dir={tmp_path / 'full'}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen([sys.executable] + args + [f"--model_dir={killed}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not os.path.exists(killed / "ckpt" / "ckpt-2.index") and time.time() < deadline:
        assert proc.poll() is None, "the run ended before the kill"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(killed / "metrics.json")
    resumed = run_script(args + [f"--model_dir={killed}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ", resuming at step " in resumed.stdout.splitlines()[0]  # the plan
    _, err = full.communicate(timeout=600)
    assert full.returncode == 0, err[-3000:]
    a = json.load(open(tmp_path / "full" / "metrics.json"))
    b = json.load(open(killed / "metrics.json"))
    assert a["steps"] == b["steps"] == 4 and a["unreadable_images"] == 0
    assert a["evals"] == b["evals"]
    run = json.load(open(killed / "run.json"))
    assert run["data_options"] == {"stream": "true", "image_size": 16,
                                   "augmentation": "resized_crop_flip"}
    assert run["augmentation"] == "resized_crop_flip"
    wa, wb = checkpoint_weights(tmp_path / "full"), checkpoint_weights(killed)
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.slow
def test_resnet50_trains_a_step_on_a_streamed_imagenet_folder(tmp_path, imagenet_folder):
    """The issue's command with the ImageNet network (about a minute on 2 cores; the fast
    test above proves the same path with the small CNN)."""
    out = run_script(_train_args(imagenet_folder, model="resnet50", image_size=32,
                                 batch_size=2, train_steps=1, eval_every=1, eval_batch_size=2)
                     + [f"--model_dir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert metrics["model"] == "resnet50" and metrics["steps"] == 1


# ---------------------------------------------------------------- the trainer's numbers
def test_training_goes_on_past_an_unreadable_file_and_counts_it(tmp_path, one_replica, capfd):
    from mixmatch_tf.training import RunConfig, Trainer
    root = make_imagenet_folder(tmp_path / "d", classes=2, train=4, val=2)
    bad = os.path.join(root, "train", "n00000000", "n00000000_3.JPEG")
    with open(bad, "wb") as f:
        f.write(b"GIF89a this is no image")
    with open(os.path.join(root, "val", "n00000001", "n00000001_0.JPEG"), "wb") as f:
        f.write(b"")
    data = load.load_dataset(f"folder:{root}", stream="true", image_size=8)
    run = RunConfig(model_dir=str(tmp_path / "run"), eval_batch_size=4, steps_per_call=2)
    trainer = Trainer("erm", data, run, strategy=one_replica,
                      config={"model": "small_cnn", "batch_size": 4, "train_steps": 6,
                              "eval_every": 6})
    metrics = trainer.fit()
    assert metrics["steps"] == 6 and metrics["complete"]
    assert metrics["unreadable_images"] == 3  # drawn once in each of the 3 epochs of 8 files
    assert metrics["evals"][-1]["unreadable_test_images"] == 1
    assert bad in capfd.readouterr().err


def test_top5_error_beside_the_top1_error_with_more_than_ten_classes(one_replica):
    from mixmatch_tf.data.pipeline import ArraySource
    from mixmatch_tf.training.passes import Passes
    labels = np.arange(12)
    images = np.zeros((12, 2, 2, 1), np.uint8) + labels[:, None, None, None].astype(np.uint8)
    norm = Normalization(mean=(0.0,), std=(1.0,))
    source = ArraySource(images, labels, norm)
    passes = Passes(one_replica, norm, source, source, 12, batch_size=5)
    # the true class of image y is ranked (y mod 7)-th: top-1 hits y in {0, 7},
    # top-5 misses y in {5, 6}; 83.33% and 16.67% error
    ranks = labels % 7
    probs = np.zeros((12, 12), np.float32)
    for y in labels:
        others = [c for c in range(12) if c != y]
        order = others[:ranks[y]] + [y] + others[ranks[y]:]
        probs[y, order] = np.linspace(1.0, 0.1, 12)
    table = tf.constant(probs)

    def predict(x):
        return tf.gather(table, tf.cast(tf.round(x[:, 0, 0, 0]), tf.int32))
    error, _ = passes.test_error(predict)
    assert error == pytest.approx(100 * 10 / 12)
    assert passes.last_details["top5_test_error"] == pytest.approx(100 * 2 / 12)


# --------------------------------------------------------------------- serving
def test_the_export_of_a_streamed_run_serves_a_jpeg_as_evaluation_sees_it(tmp_path, one_replica,
                                                                         imagenet_folder):
    """serving_bytes of a streamed run's export crops as streamed evaluation does (shorter
    side to round(16 * 256 / 224) = 18, central 16 x 16), not stretches, and says so."""
    from mixmatch_tf.serving.export import decode_images, read_resize
    from mixmatch_tf.training import RunConfig, Trainer
    data = load.load_dataset(f"folder:{imagenet_folder}", stream="true", image_size=16)
    trainer = Trainer("erm", data, RunConfig(model_dir=str(tmp_path / "run"), precision="float32"),
                      strategy=one_replica, config={"model": "small_cnn", "batch_size": 6})
    path = trainer.export(str(tmp_path / "exports"))
    assert read_resize(path) == "central_crop"
    files = [f for f in data.test_files
             if (lambda s: s[0] != s[1])(tf.image.extract_jpeg_shape(tf.io.read_file(f)))][:3]
    contents = tf.stack([tf.io.read_file(f) for f in files])
    # the evaluation path: the streamed test set's decoding, then the trainer's predictor
    evaluated = tf.stack([streaming.eval_image(c, (16, 16, 3), augment.RESIZE_CENTRAL_CROP)
                          for c in contents])
    expected = tf.cast(trainer.predict(evaluated), tf.float32).numpy()  # probabilities
    served = tf.saved_model.load(path).signatures["serving_bytes"](image_bytes=contents)
    np.testing.assert_array_equal(decode_images(contents, (16, 16, 3), resize="central_crop"),
                                  evaluated)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    # stretching (in-memory runs' resize, kept for them) sees other pixels of these files
    stretched = decode_images(contents, (16, 16, 3), resize="stretch").numpy()
    assert all(np.any(s != e) for s, e in zip(stretched, evaluated.numpy()))
