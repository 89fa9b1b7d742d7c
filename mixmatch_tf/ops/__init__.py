"""Pure TensorFlow / TFP functions used by the methods.

Every op takes its randomness as an argument (a lambda, a permutation); the
``sample_*`` functions draw that randomness from a stateless seed, so tests can
pin hand-computed values and a resumed run draws the same numbers.
"""
from mixmatch_tf.ops.losses import (cross_entropy, entropy, neg_entropy,
                                    prior_penalty, soft_cross_entropy,
                                    squared_error)
from mixmatch_tf.ops.mixing import (gaussian_noise, knn_table, max_lambda, mix,
                                    mixup, mixup_many, sample_beta, sample_dirichlet,
                                    sample_permutation)
from mixmatch_tf.ops.random import make_seed
from mixmatch_tf.ops.schedules import linear_rampup, step_decay, warmup_step_decay
from mixmatch_tf.ops.targets import co_refine, guess_labels, sharpen, smooth_labels
