"""Small pieces that several train steps write out: weight decay, EMA, replicas."""
import tensorflow as tf


def num_replicas():
    """Replicas in sync of the current strategy (1 outside any strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_gradients(tape, loss, variables):
    """Gradients of a per-replica mean loss, scaled by 1 / replicas.

    Keras optimizers sum gradients over replicas, so the applied update is the
    gradient of the global mean loss whatever the replica count (the slices are
    of equal size).
    """
    scale = 1.0 / num_replicas()
    return [None if g is None else g * scale for g in tape.gradient(loss, variables)]


def add_l2_gradients(grads, variables, weight_decay):
    """g + wd * w for every variable: PyTorch-style (coupled) weight decay.

    Divided by the replica count because the optimizer sums gradients over
    replicas. Applies to all trainable variables, biases and BN included, as
    ``torch.optim.SGD(weight_decay=...)`` does in the mixup and DivideMix code.
    """
    if not weight_decay:
        return list(grads)
    scale = weight_decay / num_replicas()
    return [g + scale * tf.cast(v, g.dtype) for g, v in zip(grads, variables)]


def decay_kernels(model, rate):
    """kernel *= 1 - rate for the conv and dense kernels of ``model`` only.

    Decoupled weight decay as the official MixMatch code applies it after each
    step (``rate = wd * lr``): biases and batch-norm parameters are untouched.
    """
    for v in model.trainable_variables:
        if v.path.endswith("kernel"):
            v.assign(v * (1.0 - tf.cast(rate, v.dtype)))


def ema_update(ema_model, model, decay):
    """ema <- decay * ema + (1 - decay) * w for every weight (BN statistics too)."""
    for e, w in zip(ema_model.weights, model.weights):
        e.assign(decay * e + (1.0 - decay) * tf.cast(w, e.dtype))


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
