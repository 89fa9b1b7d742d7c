"""Data: sources, label noise, augmentation and tf.data pipelines."""
from mixmatch_tf.data.noise import make_noisy_labels, noisy_labels_for_run
from mixmatch_tf.data.pipeline import ArraySource, Stream, eval_dataset, train_dataset
from mixmatch_tf.data.preprocess import Normalization, normalize
from mixmatch_tf.data.sources import (DataNotPreparedError, ImageData, dataset_names,
                                      load_dataset, load_digits, stratified_split)
