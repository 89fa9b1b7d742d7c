"""Data: sources, label noise, augmentation and pipelines."""
import os

import numpy as np
import pytest
import tensorflow as tf

from mixmatch_tf.data import arrays, augment, dataset, folders, load, noise, pipeline
from mixmatch_tf.data import tfds as tfds_data
from mixmatch_tf.data.preprocess import Normalization, normalize


# ----------------------------------------------------------------------------- sources
def test_digits_split_is_fixed_stratified_and_real(digits):
    assert digits.train_images.shape == (1297, 8, 8, 1)
    assert digits.test_images.shape == (500, 8, 8, 1)
    assert digits.train_images.dtype == np.uint8 and digits.train_images.max() == 255
    assert digits.num_classes == 10 and digits.augmentation == "pad_crop"  # no flips
    counts = np.bincount(digits.test_labels, minlength=10)
    totals = counts + np.bincount(digits.train_labels, minlength=10)
    assert np.all(np.abs(counts - 500 * totals / totals.sum()) < 1)
    again = arrays.load_digits()
    np.testing.assert_array_equal(again.test_labels, digits.test_labels)
    np.testing.assert_array_equal(again.train_images, digits.train_images)


def test_stratified_split_hand_values():
    labels = np.array([0] * 6 + [1] * 4)
    train, test = dataset.stratified_split(labels, 5, seed=0)
    assert len(test) == 5 and len(train) == 5
    assert np.sum(labels[test] == 0) == 3 and np.sum(labels[test] == 1) == 2
    assert set(train) | set(test) == set(range(10))


def test_npz_out_of_range_label_names_index_and_value(tmp_path):
    x = np.zeros((6, 4, 4, 1), np.uint8)
    path = str(tmp_path / "d.npz")
    np.savez(path, x=x, y=np.array([0, 1, 2, 1, 7, 0]), class_names=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"label at index 4 is 7, outside \[0, 3\)"):
        arrays.load_npz(path)
    np.savez(path, x=x, y=np.array([0, 1, -1, 1, 0, 0]))
    with pytest.raises(ValueError, match="label at index 2 is -1"):
        arrays.load_npz(path)


def test_npz_rejects_float_pixels_and_missing_keys(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.random.rand(4, 4, 4).astype(np.float32), y=np.zeros(4, int))
    with pytest.raises(ValueError, match="uint8 pixels"):
        arrays.load_npz(path)
    np.savez(path, images=np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="missing array 'x'"):
        arrays.load_npz(path)


def test_npz_loads_with_and_without_test_split(tmp_path):
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (50, 6, 6)).astype(np.uint8)
    y = np.arange(50) % 5
    path = str(tmp_path / "d.npz")
    np.savez(path, x=x, y=y)
    d = arrays.load_npz(path)
    assert d.train_images.shape == (40, 6, 6, 1) and d.test_images.shape == (10, 6, 6, 1)
    assert d.num_classes == 5 and np.bincount(d.test_labels).tolist() == [2] * 5
    np.savez(path, x=x, y=y, x_test=x[:7], y_test=y[:7])
    d = arrays.load_npz(path)
    assert d.num_train == 50 and len(d.test_labels) == 7


def _write_png(path, value, shape=(5, 5, 3)):
    png = tf.io.encode_png(np.full(shape, value, np.uint8)).numpy()
    with open(path, "wb") as f:
        f.write(png)


def test_folder_reads_classes_and_reports_corrupt_image(tmp_path):
    for c in ("cat", "dog"):
        os.makedirs(tmp_path / c)
        for i in range(5):
            _write_png(tmp_path / c / f"{i}.png", 10 * i)
    d = folders.load_folder(str(tmp_path))
    assert d.class_names == ("cat", "dog") and d.num_train == 8 and len(d.test_labels) == 2
    # each training image's file (for reports naming examples), after the hold-out
    assert len(d.train_files) == 8 and len(set(d.train_files)) == 8
    for f, label, image in zip(d.train_files, d.train_labels, d.train_images):
        assert os.path.basename(os.path.dirname(f)) == d.class_names[label]
        assert image[0, 0, 0] == 10 * int(os.path.basename(f)[0])  # its pixels are that file's
    (tmp_path / "dog" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png: cannot decode image"):
        folders.load_folder(str(tmp_path))


def test_folder_with_train_and_test_subfolders(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for c in ("a", "b"):
            os.makedirs(tmp_path / split / c)
            for i in range(n):
                _write_png(tmp_path / split / c / f"{i}.png", i, shape=(4, 4, 1))
    d = folders.load_folder(str(tmp_path))
    assert d.num_train == 6 and len(d.test_labels) == 4 and d.image_shape == (4, 4, 1)


def test_tfds_through_mock_data_and_clear_error_when_missing(tmp_path):
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=12):
        d = load.load_dataset("cifar100", data_dir=str(tmp_path))
    assert d.train_images.shape == (12, 32, 32, 3) and d.num_classes == 100
    assert d.coarse_labels is not None and d.augmentation == "pad_crop_flip"
    assert augment.pad_for(32) == 4
    with tfds.testing.mock_data(num_examples=6):
        d = load.load_dataset("cifar10_n", data_dir=str(tmp_path))
    assert set(d.label_sets) >= {"aggre_label", "worse_label"}
    with pytest.raises(dataset.DataNotPreparedError) as e:
        load.load_dataset("svhn_cropped", data_dir=str(tmp_path))
    msg = str(e.value)
    assert "svhn_cropped" in msg and str(tmp_path) in msg and "download_and_prepare" in msg


def test_unknown_dataset_lists_known():
    with pytest.raises(ValueError, match="valid: digits, cifar10.*any TFDS image-classification"):
        load.load_dataset("no_such_data")


def test_any_tfds_image_classification_data_set_by_name(tmp_path):
    """Not only the papers' data sets: any TFDS data set with an image and a class label,
    its splits, classes and shape read off the builder's info."""
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=8):
        mnist = load.load_dataset("mnist", data_dir=str(tmp_path))
        colour = load.load_dataset("eurosat", data_dir=str(tmp_path))  # no test split
        sizes = load.load_dataset("cats_vs_dogs", data_dir=str(tmp_path))
        # a data set with a train split only (once prepared TFDS lists its splits):
        # a stratified fifth of it is held out to test on
        train_only = tfds_data.load_tfds("eurosat", str(tmp_path),
                                         tfds_data.Layout(test=None, shape=(64, 64, 3)))
    assert isinstance(mnist, dataset.ImageData) and mnist.image_shape == (28, 28, 1)
    assert mnist.num_classes == 10 and mnist.augmentation == "pad_crop"  # grey: no flips
    assert colour.image_shape == (64, 64, 3) and colour.augmentation == "pad_crop_flip"
    assert train_only.num_train == 6 and len(train_only.test_labels) == 2
    assert isinstance(sizes, dataset.StreamedData) and sizes.augmentation == "resized_crop_flip"
    with pytest.raises(ValueError, match="imdb_reviews: a TFDS data set with an 'image' and a "
                                         "'label' \\(class\\) feature is needed"):
        load.load_dataset("imdb_reviews", data_dir=str(tmp_path))


# ------------------------------------------------------------------------------- noise
def test_symmetric_noise_rate_and_seed(digits):
    y = digits.train_labels
    a = noise.symmetric_noise(y, 10, 0.5, seed=1)
    b = noise.symmetric_noise(y, 10, 0.5, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, noise.symmetric_noise(y, 10, 0.5, seed=2))
    flipped = np.mean(a != y)
    assert abs(flipped - 0.5 * 0.9) < 0.04  # the draw may keep the true class
    np.testing.assert_array_equal(noise.symmetric_noise(y, 10, 0.0, seed=1), y)
    assert np.mean(noise.symmetric_noise(y, 10, 1.0, seed=1) != y) > 0.85


def test_asymmetric_noise_follows_the_mapping_exactly(digits):
    y = digits.train_labels
    mapping = noise.DIGITS_ASYMMETRIC
    noisy = noise.asymmetric_noise(y, mapping, 0.4, seed=0)
    changed = noisy != y
    assert set(np.unique(y[changed])) == set(mapping)
    for c, target in mapping.items():
        members = y == c
        assert np.all(noisy[members & changed] == target)
        assert np.sum(members & changed) == int(round(0.4 * members.sum()))


def test_cifar_mappings():
    assert noise.CIFAR10_ASYMMETRIC == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
    fine = np.array([0, 1, 2, 3, 4, 5])
    coarse = np.array([0, 0, 1, 1, 1, 2])
    assert noise.next_in_superclass(fine, coarse) == {0: 1, 1: 0, 2: 3, 3: 4, 4: 2, 5: 5}


def test_a_noise_mapping_is_read_from_ids_or_names_and_refused_in_one_line():
    names = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt"]
    assert noise.parse_mapping("0:6, Shirt:T-shirt,Pullover:4", names) == {0: 6, 6: 0, 2: 4}
    assert noise.format_mapping({6: 0, 2: 4, 0: 6}) == "0:6,2:4,6:0"
    for text, message in (("0:7", "'7' is not a class; valid: class ids 0..6 or names"),
                          ("Boot:Coat", "'Boot' is not a class"),
                          ("0-6", "'0-6' is not FROM:TO"), ("0:6,0:2", "class 0 is mapped twice"),
                          ("3:3", "mapped to itself"), (" , ", "holds no FROM:TO pair")):
        with pytest.raises(ValueError, match=message):
            noise.parse_mapping(text, names)


def test_noisy_labels_follow_a_given_mapping_and_record_it(tmp_path, digits):
    mapping = {0: 6, 6: 0}
    noisy = noise.noisy_labels_for_run(digits, "asym", 0.5, 1, str(tmp_path), mapping)
    y = digits.train_labels
    changed = noisy != y
    assert set(np.unique(y[changed])) == {0, 6}
    for c in (0, 6):
        assert np.sum(changed & (y == c)) == int(round(0.5 * np.sum(y == c)))
        assert np.all(noisy[changed & (y == c)] == mapping[c])
    # The file records the mapping: the data set's own mapping (or another) is refused.
    with pytest.raises(ValueError, match="mapping"):
        noise.noisy_labels_for_run(digits, "asym", 0.5, 1, str(tmp_path))
    np.testing.assert_array_equal(
        noise.noisy_labels_for_run(digits, "asym", 0.5, 1, str(tmp_path), {6: 0, 0: 6}), noisy)


def test_noisy_labels_are_saved_and_reused(tmp_path, digits):
    a = noise.noisy_labels_for_run(digits, "sym", 0.8, 3, str(tmp_path))
    assert os.path.exists(tmp_path / noise.NOISE_FILE)
    b = noise.noisy_labels_for_run(digits, "sym", 0.8, 3, str(tmp_path))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="noise_rate"):
        noise.noisy_labels_for_run(digits, "sym", 0.5, 3, str(tmp_path))


# ------------------------------------------------------------------------ augmentation
def test_crop_flip_hand_values():
    img = tf.reshape(tf.range(9), [1, 3, 3, 1])
    # reflect pad 1: rows/cols index -1 -> 1, 3 -> 1
    same = augment.crop_flip(img, tf.constant([[1, 1]]), tf.constant([False]), pad=1, padding="reflect")
    np.testing.assert_array_equal(same, img)
    corner = augment.crop_flip(img, tf.constant([[0, 0]]), tf.constant([False]), pad=1, padding="reflect")
    np.testing.assert_array_equal(corner[0, :, :, 0], [[4, 3, 4], [1, 0, 1], [4, 3, 4]])
    flipped = augment.crop_flip(img, tf.constant([[1, 1]]), tf.constant([True]), pad=1, padding="reflect")
    np.testing.assert_array_equal(flipped[0, :, :, 0], [[2, 1, 0], [5, 4, 3], [8, 7, 6]])


def test_zero_and_reflect_padding_hand_values():
    img = tf.reshape(tf.range(1, 10), [1, 3, 3, 1])  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    corner, flip = tf.constant([[0, 0]]), tf.constant([False])
    zeros = augment.crop_flip(img, corner, flip, pad=1, padding="zeros")
    np.testing.assert_array_equal(zeros[0, :, :, 0], [[0, 0, 0], [0, 1, 2], [0, 4, 5]])
    reflect = augment.crop_flip(img, corner, flip, pad=1, padding="reflect")
    np.testing.assert_array_equal(reflect[0, :, :, 0], [[5, 4, 5], [2, 1, 2], [5, 4, 5]])
    # bottom-right corner of the 2-padded image, mirrored left-right
    far = augment.crop_flip(img, tf.constant([[4, 4]]), tf.constant([True]), pad=2,
                            padding="zeros")
    np.testing.assert_array_equal(far[0, :, :, 0], [[0, 0, 9], [0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="reflect, zeros"):
        augment.crop_flip(img, corner, flip, pad=1, padding="edge")


def test_zero_padding_is_black_in_pixel_space():
    """Padded pixels are 0 before normalisation (torchvision pads the uint8 image)."""
    images = np.full((64, 4, 4, 1), 255, np.uint8)
    src = pipeline.ArraySource(images, np.zeros(64), Normalization((100.0,), (50.0,)),
                               augmentation="pad_crop", padding="zeros")  # pads 1 of 4
    x = src.fetch(tf.range(64, dtype=tf.int64), seed=tf.constant([3, 4], tf.int64),
                  augment=True)["image"].numpy()
    black, white = (0 - 100) / 50, (255 - 100) / 50
    np.testing.assert_allclose(np.unique(x), [black, white], rtol=1e-6)
    reflect = pipeline.ArraySource(images, np.zeros(64), Normalization((100.0,), (50.0,)),
                                   augmentation="pad_crop", padding="reflect")
    y = reflect.fetch(tf.range(64, dtype=tf.int64), seed=tf.constant([3, 4], tf.int64),
                      augment=True)["image"].numpy()
    np.testing.assert_allclose(y, white, rtol=1e-6)


def test_augment_is_per_example_and_seeded():
    images = tf.tile(tf.reshape(tf.cast(tf.range(64), tf.uint8), [1, 8, 8, 1]), [32, 1, 1, 1])
    seed = tf.constant([1, 2], tf.int64)
    for policy in ("pad_crop_flip", "resized_crop_flip"):
        a = augment.augment_views(images, seed, policy, "reflect")
        np.testing.assert_array_equal(a, augment.augment_views(images, seed, policy, "reflect"))
        assert len({a[i].numpy().tobytes() for i in range(32)}) > 5
        mapped = next(iter(tf.data.Dataset.from_tensors(images).map(
            lambda x: augment.augment_views(x, seed, policy, "reflect"))))
        np.testing.assert_array_equal(a, mapped)
        if policy == "pad_crop_flip":  # the draws every in-memory run so far has made
            offsets, flips = augment.sample_crop_flip(
                tf.random.experimental.stateless_fold_in(seed, 0), 32, 1, True)
            np.testing.assert_array_equal(a, augment.crop_flip(images, offsets, flips, 1,
                                                               "reflect"))
        # row r of the batch is what augment_row gives row r alone (the streamed path)
        for r in (0, 17):
            np.testing.assert_array_equal(
                a[r], augment.augment_row(images[r], seed, r, 32, policy, "reflect"))


def test_normalization_shared_function():
    norm = Normalization.symmetric(1)
    np.testing.assert_allclose(normalize(tf.constant([0, 255], tf.uint8), norm), [-1.0, 1.0])
    stats = Normalization.from_images(np.array([[[[0]], [[2]]]], np.uint8))
    assert stats.mean == (1.0,) and stats.std == (1.0,)


# ---------------------------------------------------------------------------- pipelines
def _source(n=10):
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8)
    return pipeline.ArraySource(images, np.arange(n) % 3, Normalization((0.0,), (1.0,)))


def test_stream_covers_each_epoch_and_resumes_exactly():
    src = _source(10)
    streams = {"train": pipeline.Stream(indices=np.arange(10), batch_size=4, augment=False)}
    ds = pipeline.train_dataset(src, streams, seed=0, salt=0)
    batches = [b["train"]["index"].numpy() for b in ds.take(10)]
    positions = np.concatenate(batches)
    for e in range(4):
        assert sorted(positions[10 * e:10 * (e + 1)]) == list(range(10))
    resumed = pipeline.train_dataset(src, streams, seed=0, salt=0, start_step=6)
    for s, b in zip(range(6, 10), resumed.take(4)):
        np.testing.assert_array_equal(b["train"]["index"], batches[s])
    np.testing.assert_array_equal(next(iter(resumed))["train"]["image"][..., 0, 0, 0],
                                  batches[6])
    other = pipeline.train_dataset(src, streams, seed=1, salt=0)
    assert not np.array_equal(next(iter(other))["train"]["index"], batches[0])


def test_stream_views_and_extras():
    src = _source(6)
    streams = {"u": pipeline.Stream(indices=np.arange(6), batch_size=3, views=2, with_labels=False,
                                    extras={"w": np.linspace(0, 1, 6).astype(np.float32)})}
    b = next(iter(pipeline.train_dataset(src, streams, seed=0, salt=0)))["u"]
    assert b["image"].shape == (3, 2, 2, 2, 1) and "label" not in b
    np.testing.assert_allclose(b["w"], np.linspace(0, 1, 6)[b["index"].numpy()], rtol=1e-6)


def test_replica_split_hands_each_replica_its_slice_of_the_global_batch():
    src = _source(12)
    streams = {"train": pipeline.Stream(indices=np.arange(12), batch_size=6, augment=False)}
    global_batch = next(iter(pipeline.train_dataset(src, streams, seed=0, salt=0)))
    ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                     num_replicas_in_sync=2)
    parts = list(pipeline.train_dataset(src, streams, seed=0, salt=0, input_context=ctx).take(2))
    np.testing.assert_array_equal(
        np.concatenate([p["train"]["index"] for p in parts]), global_batch["train"]["index"])
    ctx1 = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                      num_replicas_in_sync=2)
    second = next(iter(pipeline.train_dataset(src, streams, seed=0, salt=0, input_context=ctx1)))
    np.testing.assert_array_equal(second["train"]["index"], global_batch["train"]["index"][3:])
    with pytest.raises(ValueError, match="divisible"):
        bad = tf.distribute.InputContext(1, 0, 4)
        pipeline.train_dataset(src, streams, seed=0, salt=0, input_context=bad)


def test_eval_dataset_is_ordered_and_padded():
    src = _source(10)
    batches = list(pipeline.eval_dataset(src, batch_size=4))
    assert len(batches) == 3
    idx = np.concatenate([b["index"] for b in batches])
    mask = np.concatenate([b["mask"] for b in batches])
    np.testing.assert_array_equal(idx[mask], np.arange(10))
    assert mask.sum() == 10 and len(mask) == 12
