"""Data: data sets by format, label noise and splits, augmentation and the tf.data readers.

A data set comes from arrays (``from_arrays``, ``arrays.load_npz``, ``arrays.load_csv``),
a folder of images (``folders``), TensorFlow Datasets (``tfds``) or a finite
``tf.data.Dataset`` (``from_tf_dataset``); ``load_dataset`` takes the name the command
line gives, ``as_data`` whatever the Python API is given. Every kind implements the
protocol of ``dataset`` that a run reads.
"""
from mixmatch_tf.data.arrays import from_arrays, from_tf_dataset, load_digits
from mixmatch_tf.data.dataset import (DataNotPreparedError, ImageData, StreamedData,
                                      stratified_split)
from mixmatch_tf.data.load import as_data, dataset_names, load_dataset
from mixmatch_tf.data.noise import make_noisy_labels, noisy_labels_for_run
from mixmatch_tf.data.pipeline import ArraySource, Stream, eval_dataset, train_dataset
from mixmatch_tf.data.preprocess import Normalization, normalize
