"""What the trainer builds around a method: its context, its networks' factory,
the step counters and the checkpoint of everything."""
import dataclasses
import re

import keras
import numpy as np
import tensorflow as tf

from mixmatch_tf.methods.base import Context, Truth
from mixmatch_tf.settings import resolve_config
from mixmatch_tf.models import build_model
from mixmatch_tf.training import precision as precision_lib


def make_context(data, run, train_labels, labeled, unlabeled, map_train_set, model_fn,
                 num_replicas, fetch_images):
    """The ``Context`` a method is given: what it may know about the run (never the
    true labels: ``make_truth``)."""
    return Context(
        num_classes=data.num_classes, image_shape=data.image_shape, train_labels=train_labels,
        seed=run.seed, model_fn=model_fn, num_replicas=num_replicas, map_train_set=map_train_set,
        labeled_indices=labeled, unlabeled_indices=unlabeled, noise_type=run.noise_type,
        noise_rate=run.noise_rate, train_images=data.train_images, fetch_images=fetch_images,
        num_examples=data.num_train)


def make_truth(data, run, train_labels):
    """The run's ``Truth`` for the diagnostics, or None. The data set's labels are a
    clean reference only when the training labels were derived from them (synthetic
    noise, another label set): otherwise they are the training labels themselves,
    and a division measured against them would look perfect."""
    if (run.noise_type is None and run.label_set is None) or train_labels is None:
        return None
    return Truth(labels=np.asarray(data.train_labels), given=np.asarray(train_labels))


def method_config(method_cls, data, config, model):
    """The method's Config: ``config`` (a Config, or a dict of overrides of the paper's
    and the data set's defaults), with the method's default network (an MLP for
    tabular data) unless a model is named or given."""
    if config is None or isinstance(config, dict):
        config = resolve_config(method_cls, data, config or {})
    if config.model is None and model is None:
        default = "mlp" if data.tabular else method_cls.default_model
        config = dataclasses.replace(config, model=default)
    return config


def model_factory(model, name, image_shape, num_classes, kwargs, precision="float32", seed=0):
    """A function making fresh networks under the run's precision: from a name, a
    factory or a Keras model.

    Every network is built inside ``precision.policy_scope(precision)``, so its
    layers compute in the run's precision and Keras' global policy is left as
    the caller had it. A user's network gets float32 logits: where its output
    is a 16-bit type, it is wrapped with a float32 cast (``float32_logits``).

    The returned ``build(index=0)`` makes the ``index``-th network that a method
    trains independently of its others (DivideMix's and Co-teaching's two: 0 and
    1). A name or a function gives every call its own initialisation; a model
    instance is every network's starting point, and network ``index > 0`` gets its
    classification head (the last layer with weights) drawn anew
    (``reinitialize_head``), so co-trained networks never start identical -- as
    the official DivideMix Clothing1M code gives each network its own head on one
    pretrained backbone.

    Args:
      model: None (build ``name`` with ``kwargs``), a Keras model (cloned with
        its weights, every layer given the run's policy: it was built under the
        caller's) or a function returning a new model (called under the run's
        policy; layers it pins to a dtype keep it).
      name: a registered model name.
      image_shape, num_classes: of the data.
      kwargs: keyword arguments of ``build_model`` (the method's
        ``model_kwargs`` and the run's ``sync_bn``).
      precision: the run's precision (a Keras dtype policy name).
      seed: the run seed (the redrawn heads' initializers are seeded from it).
    """
    if model is None:
        def make():
            return build_model(name, image_shape, num_classes, **kwargs)
    elif isinstance(model, keras.Model):
        # Variables must be created under the strategy: each network is a clone
        # built where the method builds it, starting from the given weights.
        def make():
            copy = keras.models.clone_model(model, clone_function=_with_policy(precision),
                                            recursive=True)
            copy.build((None,) + tuple(image_shape))
            copy.set_weights(model.get_weights())
            return copy
    elif callable(model):
        make = model
    else:
        raise TypeError(f"model must be a keras.Model or a function returning one, got "
                        f"{type(model).__name__}")

    def build(index=0):
        with precision_lib.policy_scope(precision):
            net = make()
            if model is None:
                return net
            if not isinstance(net, keras.Model):
                raise TypeError(f"the model function returned a {type(net).__name__}, "
                                "not a keras.Model")
            if index and isinstance(model, keras.Model):
                reinitialize_head(net, seed=seed * 1009 + index)
            return float32_logits(net, image_shape, num_classes)
    return build


def _last_layer_with_weights(layer):
    for sub in reversed(getattr(layer, "layers", [])):
        if sub.weights:
            return _last_layer_with_weights(sub)
    return layer


def reinitialize_head(net, seed):
    """Draws the weights of ``net``'s last layer with weights (its classification
    head) anew from that layer's own initializers (``kernel_initializer``,
    ``bias_initializer``, ...) under ``seed`` (a Keras initializer without a seed
    repeats its first draw); a TypeError saying to pass a function instead when the
    layer names no initializer for a weight."""
    head = _last_layer_with_weights(net)
    for variable in head.weights:
        name = variable.path.rsplit("/", 1)[-1]
        initializer = getattr(head, f"{name}_initializer", None)
        if initializer is None:
            raise TypeError(
                f"the two networks this method co-trains must not start identical, and the "
                f"head {head.name!r} of the given model has no {name}_initializer to draw its "
                f"{name!r} anew; pass a function returning a new model instead")
        initializer = keras.initializers.get(initializer)
        config = initializer.get_config()
        if "seed" in config:
            config["seed"] = seed
        fresh = initializer.__class__.from_config(config)
        variable.assign(fresh(variable.shape, variable.dtype))


def _with_policy(precision):
    """``clone_model``'s clone function: a layer made anew from its config, computing
    in ``precision`` (the config holds the policy it was first built under)."""
    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        copy.dtype_policy = precision
        return copy
    return clone


def _keras_reason(error):
    """The line of a Keras call error that says what is wrong (Keras wraps it between
    "Exception encountered when calling ..." and "Arguments received by ...", in
    terminal bold)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    reasons = [line for line in lines if line and not line.startswith(
        ("Exception encountered", "Arguments received", "•"))]
    return reasons[0] if reasons else type(error).__name__


def float32_logits(net, image_shape, num_classes):
    """``net`` if it maps float32 images [B, *image_shape] to float32 logits
    [B, num_classes]; a model casting its 16-bit logits to float32 if they are
    not (losses and softmax need float32). A ValueError when it does not take
    the data's images, a TypeError naming what it returns when that is not
    logits."""
    inputs = keras.Input(tuple(image_shape))
    try:
        outputs = net(inputs)
    except (ValueError, TypeError) as e:
        raise ValueError(f"the model {net.name!r} does not take the data's images "
                         f"[B, {', '.join(map(str, image_shape))}]: {_keras_reason(e)}") from None
    if not isinstance(outputs, keras.KerasTensor) or tuple(outputs.shape[1:]) != (num_classes,):
        got = (f"shape {list(outputs.shape)}" if isinstance(outputs, keras.KerasTensor)
               else f"a {type(outputs).__name__}")
        raise TypeError(f"the model must map images [B, {', '.join(map(str, image_shape))}] to "
                        f"logits [B, {num_classes}] (one per class of the data); {net.name!r} "
                        f"returns {got}")
    if outputs.dtype == "float32":
        return net
    logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(outputs)
    return keras.Model(inputs, logits, name=net.name)


def state_variables(state):
    """Every variable of a method's state (networks, optimizers, method state), once."""
    seen, out = set(), []
    for value in tf.nest.flatten(state):
        for v in (value.variables if hasattr(value, "variables") else [value]):
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


class Counters:
    """The run's host-side counters: global step, phase index, step within the
    phase, training seconds (updated between replica steps), and the training
    rows whose image could not be read (always 0 for data held in memory)."""

    def __init__(self):
        with tf.device("/cpu:0"):
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.phase_index = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase_index")
            self.phase_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase_step")
            self.elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed")
            self.unreadable = tf.Variable(0, dtype=tf.int64, trainable=False, name="unreadable")

    def checkpoint(self, method, state, unreadable=True):
        """A tf.train.Checkpoint of the counters, the state and the networks' RNG states.

        ``unreadable``: with the unreadable-image count (False to restore a
        checkpoint written before every run saved it: ``checkpoint_holds``).
        """
        rng = [layer.seed_generator.state for net in method.networks(state)
               for layer in net._flatten_layers() if hasattr(layer, "seed_generator")]
        extra = {"unreadable": self.unreadable} if unreadable else {}
        return tf.train.Checkpoint(
            step=self.step, phase_index=self.phase_index, phase_step=self.phase_step,
            elapsed=self.elapsed, rng=rng, **extra, **{f"state_{k}": v for k, v in state.items()})
