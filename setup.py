"""mixmatch_tf: mixup, MixMatch and DivideMix in TensorFlow 2 / Keras 3."""
import setuptools

setuptools.setup(
    name="mixmatch_tf",
    version="0.1.0",
    description=("mixup, MixMatch and DivideMix as Keras models with tf.function "
                 "train steps, absl launchers, checkpoints and SavedModel export."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # The repository's flags/ (the programs' absl flags and the presets) installs as
    # mixmatch_tf.flags: the distribution claims no top-level name but its own.
    packages=setuptools.find_packages(include=["mixmatch_tf", "mixmatch_tf.*"])
    + ["mixmatch_tf.flags"],
    package_dir={"mixmatch_tf.flags": "flags"},
    package_data={"mixmatch_tf.flags": ["presets/*.cfg", "presets/*/*.cfg"]},
    entry_points={"console_scripts": [
        f"mixmatch-{name.replace('_', '-')}=mixmatch_tf.cli.{name}:run"
        for name in ("train", "evaluate", "export", "reproduce", "serve_client", "benchmark",
                     "label_issues")]},
    python_requires=">=3.10",
    # What the package imports, each with the major version it is tested on.
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        "tf-keras>=2.21,<2.22",  # what tensorflow-probability's TF substrate imports
        "tensorflow-probability[tf]>=0.25,<0.26",
        "tensorflow-datasets>=4.9,<5",
        "tensorflow-serving-api>=2.21,<2.22",  # with grpcio and protobuf: the gRPC client
        "tensorboard>=2.21,<2.22",
        "numpy>=1.26,<3",
        "absl-py>=2,<3",
        "scikit-learn>=1.3,<2",  # the bundled digits, the tabular sets
        "matplotlib>=3.7,<4",  # the reproduction reports' figures
        "requests>=2.28,<3",  # the REST client
    ],
    extras_require={
        "test": ["pytest", "pillow"],  # pillow: images the tests write and read
        # The benchmarks' references, never needed to train: scripts/benchmark.py's
        # PyTorch steps, scripts/label_issue_benchmark.py's cleanlab.
        "bench": ["torch", "cleanlab>=2.6,<3"],
    },
)
