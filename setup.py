"""mixmatch_tf: mixup, MixMatch and DivideMix in TensorFlow 2 / Keras 3."""
import setuptools

setuptools.setup(
    name="mixmatch_tf",
    version="0.1.0",
    description=("mixup, MixMatch and DivideMix as Keras models with tf.function "
                 "train steps, absl launchers, checkpoints and SavedModel export."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # ``flags`` (the launchers' absl flags) and its presets install with the package,
    # so ``from flags import common`` works without a path patch.
    packages=setuptools.find_packages(include=["mixmatch_tf", "mixmatch_tf.*", "flags"]),
    package_data={"flags": ["presets/*.cfg", "presets/*/*.cfg"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15",
        "tf-keras>=2.21,<2.22",
        "tensorflow-probability[tf]>=0.25,<0.26",
        "tensorflow-datasets>=4.9,<5",
        "tensorflow-serving-api>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",
        "numpy",
        "absl-py",
        "scikit-learn",
        "pillow",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest"],
        # scripts/benchmark.py's same-run PyTorch reference steps; never needed to train.
        "bench": ["torch"],
    },
)
