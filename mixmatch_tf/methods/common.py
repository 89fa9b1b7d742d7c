"""Small pieces that several train steps write out: weight decay, EMA, replicas."""
import weakref

import keras
import tensorflow as tf


def num_replicas():
    """Replicas in sync of the current strategy (1 outside any strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def build_optimizer(optimizer, network):
    """Builds ``optimizer`` for ``network`` now (lazily built optimizers fail under
    MirroredStrategy), wrapped in a LossScaleOptimizer where the network was built
    under mixed_float16."""
    if network.dtype_policy.name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(network.trainable_variables)
    return optimizer


def replica_gradients(tape, loss, variables, optimizer=None):
    """Gradients of a per-replica mean loss, scaled by 1 / replicas.

    Keras optimizers sum gradients over replicas, so the applied update is the
    gradient of the global mean loss whatever the replica count (the slices are
    of equal size). With a LossScaleOptimizer (mixed_float16) backpropagation
    starts from the loss scale, so float16 gradients do not underflow; the
    optimizer unscales them when it applies them.
    """
    seed = tf.ones_like(loss) / num_replicas()
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        seed *= tf.cast(optimizer.dynamic_scale, loss.dtype)
    return tape.gradient(loss, variables, output_gradients=seed)


def add_l2_gradients(grads, variables, weight_decay, exclude=()):
    """g + wd * w for every variable: PyTorch-style (coupled) weight decay.

    Divided by the replica count because the optimizer sums gradients over
    replicas. Applies to all trainable variables, biases and BN included, as
    ``torch.optim.SGD(weight_decay=...)`` does in the mixup and DivideMix code,
    but those in ``exclude`` (ids of variables; Goyal et al. leave BN's gamma and
    beta undecayed).
    """
    if not weight_decay:
        return list(grads)
    scale = weight_decay / num_replicas()
    return [g if id(v) in exclude else g + scale * tf.cast(v, g.dtype)
            for g, v in zip(grads, variables)]


def batch_norm_parameters(model):
    """Ids of the trainable batch-norm parameters (gamma, beta) of ``model``."""
    return {id(v) for layer in batch_norm_layers(model) for v in layer.trainable_variables}


def sgd_update(tape, loss, net, optimizer, weight_decay, decay_batch_norm=True):
    """One optimizer step on a per-replica mean ``loss`` with coupled weight decay.

    The update of the mixup, DivideMix and Co-teaching code:
    ``replica_gradients`` + ``add_l2_gradients``, then ``apply_gradients``;
    ``decay_batch_norm=False`` leaves BN's gamma and beta undecayed (Goyal et al.).
    """
    variables = net.trainable_variables
    grads = replica_gradients(tape, loss, variables, optimizer)
    exclude = () if decay_batch_norm else batch_norm_parameters(net)
    optimizer.apply_gradients(zip(add_l2_gradients(grads, variables, weight_decay, exclude),
                                  variables))


def decay_kernels(model, rate):
    """kernel *= 1 - rate for the conv and dense kernels of ``model`` only.

    Decoupled weight decay as the official MixMatch code applies it after each
    step (``rate = wd * lr``): biases and batch-norm parameters are untouched.
    """
    for v in model.trainable_variables:
        if v.path.endswith("kernel"):
            v.assign(v * (1.0 - tf.cast(rate, v.dtype)))


def ema_decay(decay, updates, warmup=True):
    """The EMA's decay at its ``updates``-th update (counting from 1).

    With ``warmup``, ``min(decay, (1 + updates) / (10 + updates))`` as
    ``tf.train.ExponentialMovingAverage(decay, num_updates)`` computes it: 2/11 at
    the first update, 0.99 at the 890th, ``decay`` = 0.999 from the 8,990th on. A constant
    0.999 keeps 0.999^t of the initial (random) weights in the average after t
    updates -- 37% after 1,000, 13.5% after 2,000 -- so a short run's EMA is partly
    an untrained network. Without ``warmup`` (the official MixMatch code), ``decay``.
    """
    if not warmup:
        return decay
    updates = tf.cast(updates, tf.float32)
    return tf.minimum(tf.cast(decay, tf.float32), (1.0 + updates) / (10.0 + updates))


def ema_update(ema_model, model, decay):
    """ema <- decay * ema + (1 - decay) * w for the trainable weights only.

    As the official MixMatch code (``ema.apply(model_vars())``, trainable
    variables). Batch-norm moving statistics are not averaged: averaged
    statistics do not fit averaged weights (a network whose weights move fast
    gets statistics of activations that its EMA weights never produce). The EMA
    network's statistics are estimated for its own weights instead
    (``estimate_bn_statistics``) before it predicts.
    """
    for e, w in zip(ema_model.trainable_variables, model.trainable_variables):
        e.assign(decay * e + (1.0 - decay) * tf.cast(w, e.dtype))


_TRAINING_FORWARD = weakref.WeakKeyDictionary()


def batch_norm_layers(model):
    return [layer for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)]


def estimate_bn_statistics(model, batches):
    """Sets the moving statistics of every BN layer of ``model`` to the exact
    statistics of its inputs over ``batches`` (precise batch norm).

    ``model`` runs in training mode over each batch, as when it trains; each BN
    layer's moving mean and variance become the mean and (biased) variance of
    its input over all the examples of all batches: mean_b and var_b + mean_b^2
    are averaged over batches, weighted by batch size. Deterministic for given
    weights and batches, so evaluating twice gives the same numbers. Runs in the
    cross-replica context: every replica gets the same statistics.

    Args:
      model: a Keras model; models without batch norm are left alone.
      batches: iterable of float image tensors [b, H, W, C].

    References:
      Wu & Johnson, Rethinking "Batch" in BatchNorm, 2021 (precise BN);
      google-research/mixmatch ``libml/train.py`` (the ``tune`` pass).
    """
    layers = batch_norm_layers(model)
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    sums = [[0.0, 0.0] for _ in layers]
    total = 0
    try:
        for layer in layers:  # moving statistics := the statistics of the last batch
            layer.momentum = 0.0
        forward = _TRAINING_FORWARD.get(model)
        if forward is None:  # traced with momentum 0, kept for the next estimate
            forward = _TRAINING_FORWARD[model] = tf.function(lambda x: model(x, training=True))
        for x in batches:
            forward(x)
            b = int(x.shape[0])
            for acc, layer in zip(sums, layers):
                mean = layer.moving_mean.numpy().astype("float64")
                var = layer.moving_variance.numpy().astype("float64")
                acc[0] = acc[0] + b * mean
                acc[1] = acc[1] + b * (var + mean * mean)
            total += b
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if not total:
        raise ValueError("estimate_bn_statistics needs at least one batch")
    for (first, second), layer in zip(sums, layers):
        mean = first / total
        layer.moving_mean.assign(tf.cast(mean, layer.moving_mean.dtype))
        layer.moving_variance.assign(tf.cast(second / total - mean * mean,
                                             layer.moving_variance.dtype))


def set_learning_rate(optimizer, lr):
    optimizer.learning_rate.assign(tf.cast(lr, optimizer.learning_rate.dtype))
    return lr


def bn_statistics(model):
    """The non-trainable variables of ``model`` (batch-norm moving statistics)."""
    return [v for v in model.non_trainable_variables]


def call_without_stat_updates(model, x):
    """model(x, training=True) whose batch-norm statistics updates are undone.

    The official MixMatch code lets only the first forward pass of a step update
    the moving statistics; Keras has no switch for that, so the statistics are
    read before and written back after the call.
    """
    stats = bn_statistics(model)
    saved = [tf.identity(v) for v in stats]
    with tf.control_dependencies(saved):
        out = model(x, training=True)
    with tf.control_dependencies([out]):
        for v, s in zip(stats, saved):
            v.assign(s)
    return out


def global_mixup(xs, ys, alpha, seed, per_example=True, keep_max=True):
    """MixUp over the concatenation of ``xs`` (and ``ys``) across all replicas.

    Each replica holds its slice of every part (labeled batch, unlabeled views, ...).
    The parts are gathered from all replicas into the global batch, mixed with one
    permutation and lambdas drawn from ``seed`` (the same on every replica), and
    each replica keeps its own slices of the result. With one replica this is
    MixUp of the concatenated batch; with R replicas it gives the very same numbers.

    Args:
      xs: list of per-replica tensors [b_i, ...] (static b_i).
      ys: list of per-replica targets [b_i, C].
      alpha: Beta(alpha, alpha) concentration.
      seed: stateless seed [2].
      per_example: one lambda per example (official MixMatch) or one per batch.
      keep_max: lambda' = max(lambda, 1 - lambda) (MixMatch, DivideMix).

    Returns:
      (mixed xs, mixed ys), lists of the input shapes.
    """
    from mixmatch_tf import ops
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync
    sizes = [int(x.shape[0]) for x in xs]
    if replicas > 1:
        xs = [ctx.all_gather(x, axis=0) for x in xs]
        ys = [ctx.all_gather(y, axis=0) for y in ys]
    x_all, y_all = tf.concat(xs, 0), tf.concat(ys, 0)
    n = replicas * sum(sizes)
    lam_seed, perm_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    lam = ops.sample_beta(alpha, [n] if per_example else [], lam_seed)
    if keep_max:
        lam = ops.max_lambda(lam)
    x_all, y_all = ops.mixup(x_all, y_all, lam, ops.sample_permutation(n, perm_seed))
    rid = ctx.replica_id_in_sync_group if replicas > 1 else 0
    out_x, out_y, offset = [], [], 0
    for b in sizes:
        start = offset + rid * b
        out_x.append(x_all[start:start + b])
        out_y.append(y_all[start:start + b])
        offset += replicas * b
    return out_x, out_y


def per_sample_loss(net, batch):
    """Cross-entropy of each example's given label under ``net`` in eval mode: DivideMix's
    co-divide and the label evidence of the two-network methods."""
    from mixmatch_tf import ops
    return ops.cross_entropy(net(batch["image"], training=False), batch["label"])
