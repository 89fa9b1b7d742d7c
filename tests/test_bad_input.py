"""Bad input is never silently wrong: one table of malformed inputs and their outcomes.

Every case builds its input under ``tmp_path``, calls the library function a user's
input reaches (flag parsing, a data loader, the Trainer, the export), and pins the
exact outcome: the exception type and a substring of its one-line message. Cases
that go through the Trainer also check that nothing was written into model_dir.
A few cases run ``scripts/train.py`` to pin the exit code and the one-line output.
Inputs that must be read correctly (a BOM, a ``;`` delimiter, a header whose first
name is a number) are pinned by value in the tests after the table.
"""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import app

from conftest import run_script
from mixmatch_tf.flags import common as cli
from mixmatch_tf.data import arrays, folders
from mixmatch_tf.methods import ConfigError
from mixmatch_tf.serving.export import PNG_END
from mixmatch_tf.training import RunConfig, Trainer

if "method" not in cli.FLAGS:  # tests/test_flags.py may have defined them already
    cli.define_train_flags()
FLAGS = cli.FLAGS


def parse(args):
    FLAGS.unparse_flags()
    FLAGS(["train.py"] + args)
    cli.validate_names()
    return cli.resolve(FLAGS.dataset)


@dataclasses.dataclass
class Env:
    tmp: str
    request: object

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, text, encoding="utf-8"):
        with open(self.path(name), "w", encoding=encoding, newline="") as f:
            f.write(text)
        return self.path(name)

    def npz(self, **arrays):
        path = self.path("d.npz")
        np.savez(path, **arrays)
        return path

    def trainer(self, data, strategy="one_replica", model=None, **config):
        """Trains nothing: builds the Trainer, which must refuse before model_dir exists."""
        run = RunConfig(model_dir=self.path("run"))
        if isinstance(data, str) and data in ("digits",):
            data = self.request.getfixturevalue("digits")
        try:
            Trainer(config.pop("method", "erm"), data, run, config=dict(config, model=model),
                    strategy=self.request.getfixturevalue(strategy))
        finally:
            assert not os.path.exists(self.path("run")), "model_dir was written"


def _images(n=10, size=6, channels=1):
    return np.random.RandomState(0).randint(0, 256, (n, size, size, channels)).astype(np.uint8)


def _png(path, shape=(4, 4, 1), value=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(np.full(shape, value, np.uint8)).numpy())


def _folder(env, classes=("a", "b"), n=3):
    for c in classes:
        for i in range(n):
            _png(env.path(f"data/{c}/{i}.png"), value=10 * i)
    return env.path("data")


CSV_OK = "1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,10,0\n"

# (case id, fn(env), exception type, message substring)
CASES = [
    # ------------------------------------------------ flags: every float finite, ints in range
    ("flag_mixup_alpha_inf", lambda e: parse(["--mixup_alpha=inf"]), app.UsageError,
     "Invalid flag --mixup_alpha=inf: must be a finite number, got inf"),
    ("flag_mixup_alpha_nan", lambda e: parse(["--mixup_alpha=nan"]), app.UsageError,
     "Invalid flag --mixup_alpha=nan: must be a finite number"),
    ("flag_mixmatch_alpha_inf", lambda e: parse(["--method=mixmatch", "--mixup_alpha=inf"]),
     app.UsageError, "--mixup_alpha=inf: must be a finite number"),
    ("flag_dividemix_alpha_inf", lambda e: parse(["--method=dividemix", "--mixup_alpha=inf"]),
     app.UsageError, "--mixup_alpha=inf: must be a finite number"),
    ("flag_mixup_ssl_alpha_inf", lambda e: parse(["--method=mixup_ssl", "--mixup_alpha=inf"]),
     app.UsageError, "--mixup_alpha=inf: must be a finite number"),
    ("flag_lambda_u_inf", lambda e: parse(["--method=mixmatch", "--lambda_u=inf"]),
     app.UsageError, "--lambda_u=inf: must be a finite number"),
    ("flag_epochs_inf", lambda e: parse(["--epochs=inf"]), app.UsageError,
     "Invalid flag --epochs=inf: must be a finite number, got inf"),
    ("flag_learning_rate_nan", lambda e: parse(["--learning_rate=nan"]), app.UsageError,
     "--learning_rate=nan: must be a finite number"),
    ("flag_lr_decay_at_inf", lambda e: parse(["--lr_decay_at=0.5,inf"]), app.UsageError,
     "--lr_decay_at=['0.5', 'inf']: must be a finite number"),
    ("flag_noise_rate_nan", lambda e: parse(["--noise_type=sym", "--noise_rate=nan"]),
     app.UsageError, "--noise_rate=nan: must be a finite number"),
    ("flag_seed_negative", lambda e: parse(["--seed=-1"]), app.UsageError,
     "Invalid flag --seed=-1: must be in [0, 2**32 - 1], got -1"),
    ("flag_seed_too_large", lambda e: parse([f"--seed={2 ** 32}"]), app.UsageError,
     "--seed=4294967296: must be in [0, 2**32 - 1]"),
    # ------------------------------------------------ every setting in its declared interval
    ("dividemix_negative_lr_decay_factor",
     lambda e: parse(["--method=dividemix", "--lr_decay_factor=-5"]), app.UsageError,
     "Invalid flag --lr_decay_factor=-5.0: must be in (0, 1], got -5.0"),
    ("mixup_alpha_overflows_float32", lambda e: parse(["--mixup_alpha=1e39"]), app.UsageError,
     "--mixup_alpha=1e+39: must be a finite number in float32"),
    ("num_mixed_unbounded", lambda e: parse(["--num_mixed=100000"]), app.UsageError,
     "--num_mixed=100000: must be in [2, 64], got 100000"),
    ("train_steps_overflow", lambda e: parse([f"--train_steps={10 ** 20}"]), app.UsageError,
     f"--train_steps={10 ** 20}: must be in [1, 1e12]"),
    ("batch_size_huge", lambda e: parse(["--batch_size=1000000000"]), app.UsageError,
     "--batch_size=1000000000: must be in [1, 65536]"),
    ("unlabeled_batch_size_huge", lambda e: parse(
        ["--method=mixmatch", "--nointerleave", "--unlabeled_batch_size=10000000"]),
     app.UsageError, "--unlabeled_batch_size=10000000: must be in [1, 65536]"),
    ("eval_batch_size_huge", lambda e: parse(["--eval_batch_size=1000000000"]), app.UsageError,
     "--eval_batch_size=1000000000: must be in [1, 65536]"),
    ("cpu_replicas_1000", lambda e: parse(["--cpu_replicas=1000"]), app.UsageError,
     "--cpu_replicas=1000: must be in [0, 64]"),
    ("semi_weight_decay_flips_the_kernels", lambda e: parse(
        ["--method=mixmatch", "--weight_decay=600"]), app.UsageError,
     "--weight_decay=600.0: weight_decay * learning_rate must be < 1"),
    # ------------------------------------------------ CSV
    ("csv_fractional_label", lambda e: arrays.load_csv(e.write("d.csv", "1,2,0\n3,4,1.5\n5,6,1\n")),
     ValueError, "d.csv, line 2: label '1.5' is not a class id; class ids are whole numbers"),
    ("csv_empty_label", lambda e: arrays.load_csv(e.write("d.csv", "1,2,0\n3,4,\n5,6,1\n")),
     ValueError, "d.csv, line 2: the label (last column) is empty"),
    ("csv_negative_label", lambda e: arrays.load_csv(e.write("d.csv", "1,2,0\n3,4,-1\n5,6,1\n")),
     ValueError, "d.csv, line 2: label '-1' is not a class id"),
    ("csv_mixed_labels", lambda e: arrays.load_csv(e.write("d.csv", "1,2,0\n3,4,cat\n5,6,1\n")),
     ValueError, "d.csv, line 2: label 'cat', but the other labels are class ids"),
    ("csv_nan_feature", lambda e: arrays.load_csv(e.write("d.csv", "1,2,0\n3,nan,1\n5,6,1\n")),
     ValueError, "d.csv, line 2: feature 2 is 'nan'; features must be finite numbers"),
    ("csv_ragged_row", lambda e: arrays.load_csv(e.write("d.csv", "1,2,0\n3,4,1\n5,6,7,1\n")),
     ValueError, "d.csv, line 3: 4 cells, but line 2 has 3"),
    ("csv_text_feature", lambda e: arrays.load_csv(e.write("d.csv", "1,2,0\n3,4,1\n5,x,1\n")),
     ValueError, "d.csv, line 3, column 2: 'x' is not a number"),
    ("csv_one_column", lambda e: arrays.load_csv(e.write("d.csv", "0\n1\n0\n")),
     ValueError, "cannot tell the delimiter (none of comma, semicolon, tab"),
    ("csv_one_row", lambda e: arrays.load_csv(e.write("d.csv", "f1,f2,label\n1,2,0\n")),
     ValueError, "d.csv: needs at least two data rows, found 1"),
    ("csv_not_utf8", lambda e: arrays.load_csv(e.write("d.csv", "1,2,\xe9\n3,4,1\n", "latin-1")),
     ValueError, "d.csv: not UTF-8 text"),
    ("csv_label_of_a_billion", lambda e: arrays.load_csv(e.write(
        "d.csv", "1,2,0\n3,4,1000000000\n5,6,1\n")),
     ValueError, "d.csv, line 2: label 1000000000 (at 1) would make 1000000001 classes; at most "
                 "100000"),
    # ------------------------------------------------ npz
    ("npz_nan_pixels", lambda e: arrays.load_npz(e.npz(
        x=np.where(np.arange(360).reshape(10, 6, 6) == 200, np.nan, 0.5), y=np.arange(10) % 2)),
     ValueError, "['x']: image 5 has a pixel that is nan; images must be uint8 pixels 0-255"),
    ("npz_label_of_a_billion", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.array([0, 1, 10 ** 9] + [0] * 7))),
     ValueError, "label 1000000000 (at 2) would make 1000000001 classes"),
    ("npz_x_test_other_size", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, x_test=_images(4, size=5), y_test=np.zeros(4, int))),
     ValueError, "'x_test' images are [5, 5, 1] but 'x' images are [6, 6, 1]"),
    ("npz_x_test_other_channels", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, x_test=_images(4, channels=3), y_test=np.zeros(4, int))),
     ValueError, "'x_test' images are [6, 6, 3] but 'x' images are [6, 6, 1]"),
    ("npz_x_test_float", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, x_test=_images(4) / 255.0, y_test=np.zeros(4, int))),
     ValueError, "['x_test']: images must be uint8 pixels 0-255"),
    ("npz_empty_test_set", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, x_test=_images(0), y_test=np.zeros(0, int))),
     ValueError, "['x_test']: holds no examples (shape (0, 6, 6, 1)); it needs at least one"),
    ("npz_x_test_without_y_test", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, x_test=_images(4))),
     ValueError, "has 'x_test' but not 'y_test'; give both"),
    ("npz_y_test_without_x_test", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, y_test=np.zeros(4, int))),
     ValueError, "has 'y_test' but not 'x_test'; give both"),
    ("npz_nan_label", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.array([0, 1, np.nan] + [0] * 7))),
     ValueError, "d.npz ['y']: label at index 2 is nan; labels must be whole-number class ids"),
    ("npz_nan_test_label", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, x_test=_images(2), y_test=np.array([0.0, np.nan]))),
     ValueError, "d.npz ['y_test']: label at index 1 is nan"),
    ("npz_empty_arrays", lambda e: arrays.load_npz(e.npz(x=np.zeros((0, 6, 6), np.uint8),
                                                          y=np.zeros(0, int))),
     ValueError, "d.npz ['x']: holds no examples (shape (0, 6, 6)); it needs at least one"),
    ("npz_single_example", lambda e: arrays.load_npz(e.npz(x=_images(1), y=np.zeros(1, int))),
     ValueError, "1 example(s); at least two are needed"),
    ("npz_unknown_key", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, x_val=_images(2))),
     ValueError, "unknown arrays ['x_val'] would be ignored; valid keys: x, y, x_test, y_test"),
    ("npz_duplicate_class_names", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, class_names=np.array(["cat", "cat"]))),
     ValueError, "class names 0 and 1 are both 'cat'; class names must be distinct"),
    ("npz_empty_class_name", lambda e: arrays.load_npz(e.npz(
        x=_images(), y=np.arange(10) % 2, class_names=np.array(["cat", " "]))),
     ValueError, "class name 1 is ' '; class names must be non-empty text"),
    ("npz_tabular_test_width", lambda e: arrays.load_npz(e.npz(
        x=np.ones((10, 3)), y=np.arange(10) % 2, x_test=np.ones((2, 4)), y_test=np.zeros(2))),
     ValueError, "test features have shape [2, 4] but the training features [10, 3]"),
    # ------------------------------------------------ folder
    ("folder_directory_named_png", lambda e: (_folder(e), os.makedirs(e.path("data/a/x.png")),
                                              folders.load_folder(e.path("data"))),
     ValueError, "data/a/x.png: is a folder, not an image"),
    ("folder_broken_symlink", lambda e: (_folder(e), os.symlink(e.path("gone.png"),
                                                                e.path("data/a/z.png")),
                                         folders.load_folder(e.path("data"))),
     ValueError, "data/a/z.png: is a broken symbolic link"),
    ("folder_one_image", lambda e: (_png(e.path("data/a/0.png")),
                                    folders.load_folder(e.path("data"))),
     ValueError, "1 example(s); at least two are needed"),
    # ------------------------------------------------ model vs data, batch vs replicas
    ("small_cnn_on_tabular", lambda e: e.trainer(arrays.load_sklearn_tabular("wine"),
                                                 model="small_cnn"),
     ConfigError, "model: 'small_cnn' takes images [H, W, C], but the data's examples have "
                  "shape [13]; models that fit: mlp"),
    ("mlp_on_images", lambda e: e.trainer("digits", model="mlp"),
     ConfigError, "model: 'mlp' takes feature vectors [D], but the data's examples have shape "
                  "[8, 8, 1]; models that fit: densenet_bc_190, preact_resnet18, small_cnn, "
                  "wrn28_10, wrn28_2, wrn28_large"),
    ("image_below_minimum_size", lambda e: e.trainer(arrays.load_npz(e.npz(
        x=_images(size=1), y=np.arange(10) % 2)), model="small_cnn"),
     ConfigError, "'small_cnn' needs images of at least 2x2 pixels"),
    ("batch_not_divisible_by_replicas", lambda e: e.trainer("digits", strategy="two_replicas",
                                                            model="small_cnn", batch_size=3),
     ConfigError, "batch_size: 3 is not divisible by the 2 replicas in sync"),
]


@pytest.mark.parametrize("fn,error,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_gets_its_one_line_error(fn, error, message, tmp_path, request):
    with pytest.raises(error) as e:
        fn(Env(str(tmp_path), request))
    text = str(e.value)
    assert message in text
    assert "\n" not in text.strip()


# ---------------------------------------------------------------- read correctly, by value
def test_csv_with_bom_keeps_its_first_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV_OK.encode())
    d = arrays.load_csv(str(path), test_fraction=0.2)
    assert d.num_train + len(d.test_labels) == 5
    rows = np.concatenate([d.train_images, d.test_images])
    assert [1.0, 2.0] in rows.tolist()


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_and_a_numeric_header_are_detected_by_the_data(tmp_path, delimiter):
    text = "0,1,label\n" + CSV_OK  # header: its first column is named "0"
    path = tmp_path / "d.csv"
    path.write_text(text.replace(",", delimiter))
    d = arrays.load_csv(str(path))
    rows = np.concatenate([d.train_images, d.test_images]).tolist()
    assert sorted(rows) == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    assert d.class_names == ("0", "1")


def test_csv_quoted_fields_and_class_names(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('f1,f2,label\n1,2,"cat, big"\n3,4,dog\n5,6,"cat, big"\n7,8,dog\n')
    d = arrays.load_csv(str(path))
    assert d.class_names == ("cat, big", "dog")
    labels = dict(zip(np.concatenate([d.train_images, d.test_images])[:, 0].tolist(),
                      np.concatenate([d.train_labels, d.test_labels]).tolist()))
    assert labels == {1.0: 0, 3.0: 1, 5.0: 0, 7.0: 1}


def test_npz_bytes_class_names_are_text(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=_images(), y=np.arange(10) % 2,
             class_names=np.array(["chat".encode(), "猫".encode()]))
    assert arrays.load_npz(path).class_names == ("chat", "猫")


def test_folder_symlinks_out_of_the_folder_are_followed_and_said(tmp_path, caplog):
    root = _folder(Env(str(tmp_path), None))
    _png(str(tmp_path / "shared" / "s.png"), value=200)
    os.symlink(tmp_path / "shared" / "s.png", tmp_path / "data" / "a" / "s.png")
    with caplog.at_level("WARNING"):
        d = folders.load_folder(root)
    assert d.num_train + len(d.test_labels) == 7
    assert "1 image(s) are symbolic links to files outside the folder" in caplog.text
    assert str(tmp_path / "shared" / "s.png") in caplog.text


# ---------------------------------------------------------------- exported class names
NAMES = ["two\nlines", "tab\there", "猫 é", "back\\slash\\n", "plain", "cr\rx\u2028y"]


def test_export_serves_class_names_with_newlines_tabs_and_non_ascii_exactly(tmp_path,
                                                                            one_replica):
    from mixmatch_tf.serving.export import read_class_names
    from mixmatch_tf.serving.local import SavedModelPredictor
    from mixmatch_tf.serving import client
    x = _images(24)
    path = str(tmp_path / "d.npz")
    np.savez(path, x=x, y=np.arange(24) % 6, class_names=np.array(NAMES))
    data = arrays.load_npz(path)
    assert data.class_names == tuple(NAMES)
    trainer = Trainer("erm", data, RunConfig(model_dir=str(tmp_path / "run")),
                      config={"model": "small_cnn"}, strategy=one_replica)
    export = trainer.export(str(tmp_path / "export"), model_name="m", top_k=6)
    assert read_class_names(export) == NAMES
    with open(os.path.join(export, "assets", "class_names.txt"), encoding="utf-8") as f:
        assert len(f.read().split("\n")) == len(NAMES) + 1  # one line per name
    loaded = tf.saved_model.load(export)
    out = loaded.signatures["serving_default"](images=tf.constant(x[:8]))
    served = [v.decode() for v in out["top_k_class_names"].numpy().ravel()]
    assert served == [NAMES[c] for c in out["top_k_classes"].numpy().ravel()]
    assert sorted(set(served)) == sorted(NAMES)
    predictor = SavedModelPredictor(export)  # the C++ session, as TF Serving feeds requests
    response = predictor.predict(client.grpc_request({"images": x[:3]}, "m", "serving_default"))
    classes = tf.make_ndarray(response.outputs["classes"])
    names = [v.decode() for v in tf.make_ndarray(response.outputs["class_names"])]
    assert names == [NAMES[c] for c in classes]


# ---------------------------------------------------------------- serving limits
def _png_header(width, height):
    """A PNG declaring ``width`` x ``height``: its IHDR and IEND chunks, no pixel data
    (what a server sees first of a small file that would decode to gigabytes)."""
    import struct
    import zlib
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
            + struct.pack(">I", zlib.crc32(ihdr)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


def _encoded(fmt, size):
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def limited_export(tmp_path_factory, one_replica, digits):
    """An (untrained) export of the digits with small limits: 4 images, 100 pixels."""
    base = tmp_path_factory.mktemp("limited")
    trainer = Trainer("erm", digits, RunConfig(model_dir=str(base / "run")),
                      config={"model": "small_cnn"}, strategy=one_replica)
    path = trainer.export(str(base / "export"), model_name="m", max_batch_size=4,
                          max_image_pixels=100)
    return tf.saved_model.load(path).signatures


SMALL_PNG = tf.io.encode_png(np.zeros((8, 8, 1), np.uint8)).numpy()
NOISE = np.random.RandomState(0).randint(0, 256, (10, 10, 1)).astype(np.uint8)
NOISE_JPEG = tf.io.encode_jpeg(NOISE, quality=95).numpy()  # 195 bytes of entropy-coded data
NOISE_PNG = tf.io.encode_png(NOISE).numpy()


def _scan_data(jpeg):
    """(start, end) of the entropy-coded data of a one-scan JPEG: from after its SOS
    header to its end-of-image marker."""
    sos = jpeg.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(jpeg[sos + 2:sos + 4], "big"), len(jpeg) - 2


def _jpeg_cut(closed=False):
    """NOISE_JPEG cut in the middle of its entropy-coded data (a download broken off);
    ``closed``: with an end-of-image marker appended again."""
    start, end = _scan_data(NOISE_JPEG)
    return NOISE_JPEG[:(start + end) // 2] + (b"\xff\xd9" if closed else b"")


def _jpeg_garbage():
    """NOISE_JPEG with the second half of its entropy-coded data replaced by random
    bytes (fixed seed): its header and end-of-image marker are intact."""
    start, end = _scan_data(NOISE_JPEG)
    mid = (start + end) // 2
    garbage = np.random.RandomState(1).randint(0, 256, end - mid).astype(np.uint8).tobytes()
    return NOISE_JPEG[:mid] + garbage + NOISE_JPEG[end:]


def _png_damaged():
    """NOISE_PNG with bytes of its IDAT chunk changed: same length, IEND intact."""
    idat = NOISE_PNG.index(b"IDAT") + 4
    return NOISE_PNG[:idat + 20] + b"\0" * 20 + NOISE_PNG[idat + 40:]


def _gif_damaged():
    """A 10x10 GIF whose LZW-coded pixels are overwritten with 0xff halfway (trailer kept)."""
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(NOISE[..., 0]).save(out, format="GIF")
    gif = out.getvalue()
    return gif[:len(gif) // 2] + b"\xff" * (len(gif) - len(gif) // 2 - 1) + b";"


DECODER_FAILED = "not decodable: the decoder failed inside the image data"
LIMIT_CASES = [
    ("too_many_images", "serving_default", lambda: np.zeros((5, 8, 8, 1), np.uint8),
     "images holds 5 examples; this model serves at most 4 per request (max_batch_size, set "
     "at export)"),
    ("too_many_encoded", "serving_bytes", lambda: np.array([SMALL_PNG] * 5, dtype=object),
     "image_bytes holds 5 examples; this model serves at most 4 per request"),
    ("png_header_20000x20000", "serving_bytes",
     lambda: np.array([SMALL_PNG, _png_header(20000, 20000)], dtype=object),
     "image_bytes[1] too large: 20000x20000 pixels, over the limit of 100 pixels per image"),
    ("png_11x11", "serving_bytes", lambda: np.array([_encoded("PNG", (11, 11))], dtype=object),
     "image_bytes[0] too large: 11x11 pixels, over the limit of 100"),
    ("jpeg_20x6", "serving_bytes",
     lambda: np.array([SMALL_PNG, SMALL_PNG, _encoded("JPEG", (20, 6))], dtype=object),
     "image_bytes[2] too large: 20x6 pixels"),
    ("gif_13x9", "serving_bytes", lambda: np.array([_encoded("GIF", (13, 9))], dtype=object),
     "image_bytes[0] too large: 13x9 pixels"),
    ("bmp_9x12", "serving_bytes", lambda: np.array([_encoded("BMP", (9, 12))], dtype=object),
     "image_bytes[0] too large: 9x12 pixels"),
    ("truncated_png_header", "serving_bytes",
     lambda: np.array([SMALL_PNG, SMALL_PNG[:20]], dtype=object),
     "image_bytes[1] not decodable: the image header is truncated or declares no pixels"),
    ("truncated_png_in_batch", "serving_bytes",
     lambda: np.array([SMALL_PNG, SMALL_PNG, SMALL_PNG[:-5]], dtype=object),
     "image_bytes[2] not decodable: the image data are truncated"),
    ("truncated_gif_and_bmp", "serving_bytes",
     lambda: np.array([_encoded("GIF", (5, 5))[:-1], SMALL_PNG, _encoded("BMP", (5, 5))[:-9]],
                      dtype=object),
     "image_bytes[0,2] not decodable: the image data are truncated"),
    ("png_of_no_pixels", "serving_bytes", lambda: np.array([_png_header(0, 5)], dtype=object),
     "image_bytes[0] not decodable: the image header is truncated"),
    # Damage inside the data, found only by the decoder: named by position all the same.
    ("jpeg_cut_midway_at_2_of_4", "serving_bytes",
     lambda: np.array([SMALL_PNG, NOISE_JPEG, _jpeg_cut(), SMALL_PNG], dtype=object),
     f"image_bytes[2] {DECODER_FAILED} (2: JPEG cut short, no end-of-image marker at its "
     "end); positions count from 0"),
    ("jpeg_entropy_data_garbage", "serving_bytes",
     lambda: np.array([NOISE_JPEG, _jpeg_garbage()], dtype=object),
     f"image_bytes[1] {DECODER_FAILED} (1: JPEG data damaged); positions count from 0"),
    ("png_cut_midway", "serving_bytes",
     lambda: np.array([SMALL_PNG, NOISE_PNG[:len(NOISE_PNG) // 2], SMALL_PNG], dtype=object),
     "image_bytes[1] not decodable: the image data are truncated (or go on after the end "
     "marker of the format); positions count from 0"),
    ("png_cut_midway_and_closed", "serving_bytes",
     lambda: np.array([SMALL_PNG, NOISE_PNG[:len(NOISE_PNG) // 2] + PNG_END], dtype=object),
     f"image_bytes[1] {DECODER_FAILED} (1: PNG data damaged); positions count from 0"),
    ("png_and_jpeg_damaged_in_one_batch", "serving_bytes",
     lambda: np.array([_png_damaged(), SMALL_PNG, NOISE_PNG, _jpeg_cut()], dtype=object),
     f"image_bytes[0,3] {DECODER_FAILED} (0: PNG data damaged; 3: JPEG cut short, no "
     "end-of-image marker at its end); positions count from 0"),
    ("every_image_damaged", "serving_bytes",
     lambda: np.array([_jpeg_cut(), _jpeg_garbage()], dtype=object),
     f"image_bytes[0,1] {DECODER_FAILED} (0: JPEG cut short, no end-of-image marker at its "
     "end; 1: JPEG data damaged); positions count from 0"),
    ("gif_damaged", "serving_bytes", lambda: np.array([SMALL_PNG, _gif_damaged()], dtype=object),
     f"image_bytes[1] {DECODER_FAILED} (1: GIF data damaged); positions count from 0"),
]


@pytest.mark.parametrize("signature,make,message", [c[1:] for c in LIMIT_CASES],
                         ids=[c[0] for c in LIMIT_CASES])
def test_serving_limits_are_checked_before_decoding(limited_export, signature, make, message):
    key = "images" if signature == "serving_default" else "image_bytes"
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        limited_export[signature](**{key: tf.constant(make())})
    assert message in e.value.message


def test_requests_within_the_limits_are_served(limited_export):
    out = limited_export["serving_bytes"](image_bytes=tf.constant(
        [SMALL_PNG, _encoded("PNG", (10, 10)), _encoded("JPEG", (10, 10))]))
    assert out["classes"].shape == (3,)
    out = limited_export["serving_default"](images=tf.zeros([4, 8, 8, 1], tf.uint8))
    assert out["probabilities"].shape == (4, 10)


def test_jpeg_cut_and_closed_again_is_served_with_grey_blocks(limited_export):
    """The decision pinned: libjpeg reads a JPEG whose entropy-coded data stop at an
    end-of-image marker (it only warns "premature end of data segment"), the blocks
    it has no data for grey (128); the served model predicts on exactly those pixels."""
    closed = _jpeg_cut(closed=True)
    pixels = tf.io.decode_jpeg(closed).numpy()
    np.testing.assert_array_equal(pixels[8:], 128)  # the last row of 8x8 blocks
    assert not (tf.io.decode_jpeg(NOISE_JPEG).numpy()[8:] == 128).all()
    served = limited_export["serving_bytes"](image_bytes=tf.constant(
        [NOISE_JPEG, closed, tf.io.encode_png(pixels).numpy()]))["probabilities"].numpy()
    np.testing.assert_allclose(served[1], served[2], rtol=1e-6, atol=1e-7)
    assert np.abs(served[1] - served[0]).max() > 1e-5  # the grey blocks change the answer


def test_export_refuses_bad_limits(tmp_path, one_replica, digits):
    trainer = Trainer("erm", digits, RunConfig(model_dir=str(tmp_path / "run")),
                      config={"model": "small_cnn"}, strategy=one_replica)
    with pytest.raises(ValueError, match="max_batch_size must be a whole number >= 1, got 0"):
        trainer.export(str(tmp_path / "export"), max_batch_size=0)
    assert not (tmp_path / "export").exists()


# ---------------------------------------------------------------- through the scripts
SCRIPT_CASES = [
    ("csv_fractional_label", ["scripts/train.py", "--dataset=csv:{tmp}/d.csv"], False,
     "error: {tmp}/d.csv, line 2: label '1.5' is not a class id"),
    ("model_does_not_fit", ["scripts/train.py", "--model=mlp"], False,
     "Invalid flag --model=mlp: 'mlp' takes feature vectors [D], but the data's examples have "
     "shape [8, 8, 1]"),
    # Each script start costs ~10-25 s of imports: the flag path is pinned in the table
    # above (through the same parsing), so these run only with -m slow.
    pytest.param("infinite_alpha", ["scripts/train.py", "--mixup_alpha=inf"], False,
                 "Invalid flag --mixup_alpha=inf: must be a finite number, got inf",
                 marks=pytest.mark.slow),
    pytest.param("export_without_run", ["scripts/export.py", "--model_dir={tmp}/run",
                                        "--export_dir={tmp}/export"], False,
                 "error: {tmp}/run holds no run (run.json is missing)",
                 marks=pytest.mark.slow),
    pytest.param("reproduce_without_seeds", ["scripts/reproduce.py", "--suite=digits_noisy",
                                             "--seeds=", "--output_dir={tmp}/suite"], False,
                 "Invalid flag --seeds=: give at least one seed, like 0,1,2",
                 marks=pytest.mark.slow),
    pytest.param("reproduce_into_a_file", ["scripts/reproduce.py", "--suite=digits_noisy",
                                           "--seeds=0", "--output_dir={tmp}/d.csv"], False,
                 "Invalid flag --output_dir={tmp}/d.csv: cannot write there (File exists); "
                 "give a writable folder", marks=pytest.mark.slow),
    ("traceback_with_verbosity", ["scripts/train.py", "--dataset=csv:{tmp}/d.csv", "-v", "1"],
     True, "ValueError: {tmp}/d.csv, line 2: label '1.5' is not a class id"),
]


def _script_param(case):
    if hasattr(case, "marks"):  # a pytest.param
        return pytest.param(*case.values[1:], marks=case.marks, id=case.values[0])
    return pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize("args,traceback,message", [_script_param(c) for c in SCRIPT_CASES])
def test_scripts_print_one_line_and_exit_non_zero(tmp_path, args, traceback, message):
    (tmp_path / "d.csv").write_text("1,2,0\n3,4,1.5\n5,6,1\n")
    args = [a.format(tmp=tmp_path) for a in args]
    if args[0] == "scripts/train.py":
        args.append(f"--model_dir={tmp_path}/run")
    out = run_script(args, timeout=300)
    assert out.returncode == 1
    assert message.format(tmp=tmp_path) in out.stderr
    assert ("Traceback" in out.stderr) == traceback
    if not traceback:  # the message is one line: nothing of it spills onto the next
        line = next(l for l in out.stderr.splitlines() if message.format(tmp=tmp_path) in l)
        following = out.stderr.split(line, 1)[1].strip().splitlines()
        assert not following or following[0].startswith("Pass --helpshort"), following
    assert not (tmp_path / "run").exists() and not (tmp_path / "export").exists()


def test_scripts_turn_every_user_caused_error_into_one_line():
    """What the programs print (``cli.one_line_errors``) for errors the user's input or
    machine causes; anything else is a bug and keeps its traceback."""
    from mixmatch_tf.cli import user_error
    from mixmatch_tf.training import NonFiniteLossError, RunFolderError
    assert user_error(RunFolderError("runs/x/run.json holds a list")) == \
        "runs/x/run.json holds a list"
    assert user_error(NonFiniteLossError("loss became nan at step 3 (phase 'train'); stopped "
                                         "without saving")).startswith("loss became nan at step 3")
    full = tf.errors.ResourceExhaustedError(  # as a full disk raised it (tmpfs of 600 KB)
        None, None, "{{function_node __wrapped__SaveV2_dtypes_44_device_/job:localhost/replica:0"
        "/task:0/device:CPU:0}} runs/x/ckpt/ckpt-4_temp/part-0; No space left on device "
        "[Op:SaveV2]\n\t [[{{node SaveV2}}]]")
    assert user_error(full) == ("out of memory or disk space: runs/x/ckpt/ckpt-4_temp/part-0; "
                                "No space left on device")
    denied = tf.errors.PermissionDeniedError(None, None, "runs/x/ckpt; Read-only file system")
    assert user_error(denied) == "permission denied: runs/x/ckpt; Read-only file system"
    assert user_error(MemoryError()) == "out of memory (MemoryError)"
    assert user_error(ValueError("a.csv, line 2: label 'x'\n  how to fix it")) == \
        "a.csv, line 2: label 'x'\n  how to fix it"
    assert user_error(RuntimeError("a bug")) is None
    assert user_error(AttributeError("'list' object has no attribute 'get'")) is None


def test_evaluate_on_a_run_json_that_is_not_a_run_says_so_in_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("[]")
    out = run_script(["scripts/evaluate.py", f"--model_dir={tmp_path}/run"], timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert (f"error: {tmp_path}/run/run.json holds a list, not a run's settings (a JSON "
            "object); restore it") in out.stderr
