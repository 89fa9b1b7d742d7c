"""The bf16 path on every CPU, and a dtype policy no entry point leaves changed.

``--precision=auto`` is forced to pick mixed_bfloat16 here (the CPU flags and the
speed probe are faked), so a machine without bf16 instructions runs what a bf16
CPU runs by default -- one step and a resume of every method, export and serving,
a user's own Keras model -- slowly (emulated) but the same code. The forced runs
are tiny: on an AVX2 CPU a bf16 convolution takes ~20x float32's time.
"""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mixmatch_tf.methods import method_names
from mixmatch_tf.training import RunConfig, Trainer, load_run
from mixmatch_tf.training import precision as precision_lib

BF16_CPU = frozenset("fpu sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_bf16".split())
NOISY = {"noise_type": "sym", "noise_rate": 0.5}
# DivideMix straight into co-divide, co-refinement and co-guessing (no warm-up).
CO_DIVIDE = {"warmup_epochs": 0.0, "epochs": 2.0, "min_steps_per_epoch": 2}


@pytest.fixture
def forced_bf16(monkeypatch):
    """This process believes it runs on a CPU whose bf16 pays off."""
    monkeypatch.setattr(precision_lib, "cpu_flags", lambda: BF16_CPU)
    monkeypatch.setattr(precision_lib, "gpu_capability", lambda: None)
    monkeypatch.setattr(precision_lib, "measured_slowdown", lambda dtype: 0.6)


def policy():
    return keras.config.dtype_policy().name


def values(trainer):
    return [np.asarray(v.numpy()) for v in trainer.checkpoint_variables()]


@pytest.mark.parametrize("method", method_names())
def test_every_method_steps_and_resumes_in_bf16_where_auto_picks_it(
        tmp_path, one_replica, digits, forced_bf16, method):
    def trainer(stop):
        run = RunConfig(model_dir=str(tmp_path), stop_at_step=stop, steps_per_call=1, **NOISY)
        return Trainer(method, digits, run, config={"batch_size": 16}, strategy=one_replica)

    first = trainer(1)
    assert first.run.precision == "mixed_bfloat16" and policy() == "float32"
    for net in first.method.networks(first.state):
        assert precision_lib.computed_precision(net, digits.image_shape) == "mixed_bfloat16"
    initial = values(first)
    assert first.fit() == {"steps": 1, "complete": False}
    trained = values(first)
    assert any(not np.array_equal(a, b) for a, b in zip(initial, trained))
    assert json.load(open(tmp_path / "run.json"))["precision"] == "mixed_bfloat16"
    resumed = trainer(2)
    assert int(resumed.step) == 1 and resumed.run.precision == "mixed_bfloat16"
    for a, b in zip(trained, values(resumed)):  # restored exactly
        np.testing.assert_array_equal(a, b)
    assert resumed.fit() == {"steps": 2, "complete": False}
    assert all(np.all(np.isfinite(v)) for v in values(resumed) if v.dtype.kind == "f")
    probabilities = resumed.predict(digits.test_images[:4]).numpy()
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert policy() == "float32"


@pytest.mark.parametrize("method", ["mixmatch", "dividemix"])
def test_a_bf16_run_exports_and_serves_what_it_predicts(tmp_path, one_replica, digits,
                                                        forced_bf16, method):
    config = dict(batch_size=16, **(CO_DIVIDE if method == "dividemix" else {}))
    run = RunConfig(model_dir=str(tmp_path / "run"), stop_at_step=3, steps_per_call=1,
                    **(NOISY if method == "dividemix" else {}))
    trainer = Trainer(method, digits, run, config=config, strategy=one_replica)
    trainer.fit()
    reader = load_run(str(tmp_path / "run"), strategy=one_replica)
    assert reader.run.precision == "mixed_bfloat16"
    path = reader.export(str(tmp_path / "export"))
    assert policy() == "float32"
    images = digits.test_images[:6]
    served = tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(images))
    # the SavedModel computes in bf16 as the run did (its graph may round elsewhere)
    expected = reader.predict(images).numpy()  # after export's prepare_predict (EMA BN)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=2e-2)
    np.testing.assert_array_equal(served["classes"].numpy(), np.argmax(expected, axis=1))


def user_factory(logits_dtype=None, layer_dtype=None):
    """A user's function returning a new plain Keras network (no float32 cast of its own
    unless ``logits_dtype``; every layer pinned to ``layer_dtype`` if given)."""
    def make():
        pin = {} if layer_dtype is None else {"dtype": layer_dtype}
        layers = [keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, padding="same", **pin),
                  keras.layers.BatchNormalization(**pin), keras.layers.ReLU(**pin),
                  keras.layers.Flatten(**pin), keras.layers.Dense(10, **pin)]
        if logits_dtype:
            layers.append(keras.layers.Activation("linear", dtype=logits_dtype))
        return keras.Sequential(layers)
    return make


@pytest.mark.parametrize("method", ["mixmatch", "dividemix"])
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("kind", ["factory", "factory_float32_logits", "instance"])
def test_a_users_own_model_trains_under_every_precision(tmp_path, one_replica, digits, method,
                                                        precision, kind):
    model = {"factory": user_factory(), "instance": user_factory()(),
             "factory_float32_logits": user_factory("float32")}[kind]
    config = dict(batch_size=16, **(CO_DIVIDE if method == "dividemix" else {}))
    run = RunConfig(model_dir=str(tmp_path), stop_at_step=3, steps_per_call=1,
                    precision=precision, **(NOISY if method == "dividemix" else {}))
    trainer = Trainer(method, digits, run, config=config, strategy=one_replica, model=model)
    assert trainer.fit() == {"steps": 3, "complete": False}
    for net in trainer.method.networks(trainer.state):
        assert precision_lib.computed_precision(net, digits.image_shape) == precision
        assert net(digits.test_images[:2].astype(np.float32)).dtype == tf.float32
    assert json.load(open(tmp_path / "run.json"))["precision"] == precision
    assert trainer.write_metrics()["precision"] == precision
    assert policy() == "float32"


def test_the_run_records_the_precision_a_pinned_model_computes_in(tmp_path, one_replica, digits,
                                                                 caplog):
    """Asked for mixed_bfloat16, a network whose layers all pin float32 trains in float32:
    the run says so and records float32."""
    import logging
    run = RunConfig(model_dir=str(tmp_path), stop_at_step=1, steps_per_call=1,
                    precision="mixed_bfloat16")
    with caplog.at_level(logging.WARNING):
        trainer = Trainer("erm", digits, run, config={"batch_size": 16}, strategy=one_replica,
                          model=user_factory(layer_dtype="float32"))
    assert trainer.run.precision == "float32"
    assert "the model computes in float32, not in the run's precision mixed_bfloat16" in caplog.text
    trainer.fit()
    assert json.load(open(tmp_path / "run.json"))["precision"] == "float32"
    assert trainer.write_metrics()["precision"] == "float32"


def test_a_model_that_does_not_fit_the_data_is_named(tmp_path, one_replica, digits):
    def five_outputs():
        return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(5)], name="mine")
    with pytest.raises(TypeError, match=r"'mine' returns shape \[None, 5\]"):
        Trainer("erm", digits, RunConfig(model_dir=str(tmp_path)), strategy=one_replica,
                model=five_outputs)
    with pytest.raises(TypeError, match="returned a str, not a keras.Model"):
        Trainer("erm", digits, RunConfig(model_dir=str(tmp_path / "b")), strategy=one_replica,
                model=lambda: "net")

    def cifar_sized():
        return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                                 keras.layers.Dense(10)], name="cifar_net")
    with pytest.raises(ValueError, match=r"'cifar_net' does not take the data's images "
                                         r"\[B, 8, 8, 1\]: .*expected shape=\(None, 32, 32, 3\)"):
        Trainer("erm", digits, RunConfig(model_dir=str(tmp_path / "c")), strategy=one_replica,
                model=cifar_sized)


@pytest.mark.parametrize("caller", ["float32", "mixed_bfloat16"])
def test_no_entry_point_changes_the_callers_dtype_policy(tmp_path, one_replica, digits,
                                                         forced_bf16, caller):
    """Trainer, fit, evaluate, predict, export and load_run leave the caller's policy as it
    was; a run computes in its own precision whatever the caller's policy is."""
    keras.config.set_dtype_policy(caller)
    try:
        for precision in ("auto", "float32"):
            folder = tmp_path / f"{caller}-{precision}"
            run = RunConfig(model_dir=str(folder), precision=precision, steps_per_call=1)
            trainer = Trainer("erm", digits, run, config={"train_steps": 2, "eval_every": 2},
                              strategy=one_replica)
            assert policy() == caller
            expected = "mixed_bfloat16" if precision == "auto" else "float32"
            assert precision_lib.computed_precision(trainer.state["net"],
                                                    digits.image_shape) == expected
            for call in (trainer.fit, trainer.evaluate,
                         lambda: trainer.predict(digits.test_images[:2]),
                         lambda: trainer.export(str(folder / "export")),
                         lambda: load_run(str(folder), strategy=one_replica)):
                call()
                assert policy() == caller
    finally:
        keras.config.set_dtype_policy("float32")
