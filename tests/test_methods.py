"""Every registered method, found by discovery: one step on 1 and 2 replicas, stop and
resume, export and predict (the methods test_serving.py exports are served there);
the package's layering; the phase loop's one compiled loop per kind of phase."""
import ast
import os
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import mixmatch_tf
from conftest import ROOT
from test_serving import METHODS as SERVED
from mixmatch_tf.methods import method_names
from mixmatch_tf.training import RunConfig, Trainer

NOISY = {"noise_type": "sym", "noise_rate": 0.5}


def tiny_model():
    """A BN-free network: replicas then compute exactly what one device computes."""
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same"),
                             keras.layers.ReLU(), keras.layers.Flatten(), keras.layers.Dense(10)])


def trainer(method, folder, strategy, digits, stop_at_step, model):
    # float32: compared across replica counts and with the served answers at float32
    # tolerances (test_bf16.py runs every method under mixed_bfloat16)
    run = RunConfig(model_dir=str(folder), stop_at_step=stop_at_step, steps_per_call=1,
                    precision="float32", **NOISY)
    # small batches keep the suite fast; batch_size is a field of every method
    return Trainer(method, digits, run, config={"batch_size": 16}, strategy=strategy,
                   model=model)


def state_values(tr):
    return [np.asarray(v.numpy()) for v in tr.checkpoint_variables()]


def assert_same(a, b, **tol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, **tol)


def test_every_method_file_is_registered():
    """Discovery: each module under methods/ that defines a registered Method is listed."""
    folder = os.path.join(os.path.dirname(mixmatch_tf.__file__), "methods")
    registering = {m.name for m in pkgutil.iter_modules([folder])
                   if "@register(" in open(os.path.join(folder, m.name + ".py")).read()}
    assert len(method_names()) >= len(registering) > 0
    assert registering <= set(method_names())


@pytest.mark.parametrize("method", method_names())
def test_method_steps_alike_on_1_and_2_replicas_resumes_exports_and_predicts(
        tmp_path, one_replica, two_replicas, digits, method):
    keras.utils.set_random_seed(0)
    model = tiny_model()
    # 1 vs 2 replicas: two steps each
    one = trainer(method, tmp_path / "one", one_replica, digits, 2, model)
    initial = state_values(one)
    assert one.fit() == {"steps": 2, "complete": False}
    assert any(not np.allclose(a, b) for a, b in zip(initial, state_values(one)))
    two = trainer(method, tmp_path / "two", two_replicas, digits, 2, model)
    two.fit()
    assert_same(state_values(one), state_values(two), rtol=1e-4, atol=1e-5)
    # stopped at step 2 and resumed to step 3 == three steps in one go
    resumed = trainer(method, tmp_path / "one", one_replica, digits, 3, model)
    assert int(resumed.step) == 2
    resumed.fit()
    straight = trainer(method, tmp_path / "straight", one_replica, digits, 3, model)
    straight.fit()
    assert_same(state_values(resumed), state_values(straight), rtol=1e-5, atol=1e-6)
    if method in SERVED:
        return  # exported, reloaded and served through every loader by test_serving.py
    # export, reload, and the served probabilities are predict's
    path = resumed.export(str(tmp_path / "export"))
    images = digits.test_images[:5]
    served = tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(served["probabilities"].numpy(), resumed.predict(images).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", method_names())
def test_no_method_trains_on_the_true_labels(tmp_path, one_replica, digits, method):
    """The same noisy labels (and labeled subset), the true labels permuted: identical
    weights after three steps. Only diagnostics may read the true labels: the
    method's Context has none."""
    import dataclasses
    import shutil
    from mixmatch_tf.data import noise, splits
    keras.utils.set_random_seed(0)
    model = tiny_model()
    a = trainer(method, tmp_path / "a", one_replica, digits, 3, model)
    a.fit()
    shuffled = np.random.RandomState(1).permutation(digits.train_labels)
    assert np.mean(shuffled != digits.train_labels) > 0.8
    (tmp_path / "b").mkdir()
    for name in (noise.NOISE_FILE, splits.SPLIT_FILE):  # made from the true labels
        if (tmp_path / "a" / name).exists():
            shutil.copy(tmp_path / "a" / name, tmp_path / "b" / name)
    b = trainer(method, tmp_path / "b", one_replica,
                dataclasses.replace(digits, train_labels=shuffled), 3, model)
    np.testing.assert_array_equal(a.train_labels, b.train_labels)
    b.fit()
    for x, y in zip(state_values(a), state_values(b)):
        np.testing.assert_array_equal(x, y)
    # The true labels reach the diagnostics (the Trainer's Truth), never the method's
    # Context: none of its fields holds them.
    np.testing.assert_array_equal(b.truth.labels, shuffled)
    for field in dataclasses.fields(b.context):
        value = getattr(b.context, field.name)
        assert not (isinstance(value, np.ndarray) and value.shape == shuffled.shape
                    and np.array_equal(value, shuffled)), field.name


# DivideMix's three settings given (else they are chosen at its first co-divide) and
# its epochs few; Co-teaching's epochs few (it makes one phase per epoch).
FEW_PHASES = {"dividemix": {"epochs": 3.0, "warmup_epochs": 1.0, "lambda_u": 25.0,
                            "mixup_alpha": 4.0, "gmm_per_class": False},
              "coteaching": {"epochs": 4.0}}


@pytest.mark.parametrize("method", method_names())
def test_only_the_phase_no_other_follows_says_it_is_the_last(tmp_path, one_replica, digits,
                                                              method):
    """Phase.last is what lets a run stopped at its final step finish: it must be True on
    the last phase and nowhere else (the phases rebuilt from state, as on a resume)."""
    tr = Trainer(method, digits, RunConfig(model_dir=str(tmp_path), precision="float32", **NOISY),
                 config=dict(FEW_PHASES.get(method, {}), batch_size=16), strategy=one_replica,
                 model=tiny_model())
    lasts = []
    while (phase := tr.method.phase(len(lasts), tr.state, fresh=False)) is not None:
        lasts.append(phase.last)
    assert lasts == [False] * (len(lasts) - 1) + [True]


@pytest.mark.parametrize("method", ["erm", "coteaching"])
def test_a_run_stopped_at_its_last_step_finishes(tmp_path, one_replica, digits, method):
    """--stop_at_step at the run's final step: the run ends as an unstopped one does
    (final evaluation, metrics.json), not as a chunk waiting for a resume. DivideMix's
    case is in test_dividemix.py."""
    import json
    # ERM: one phase of 6 steps; Co-teaching: 3 epochs (phases), each evaluated
    config = {"erm": {"batch_size": 16, "train_steps": 6},
              "coteaching": dict(FEW_PHASES["coteaching"], batch_size=256)}[method]
    keras.utils.set_random_seed(0)
    model = tiny_model()
    whole = Trainer(method, digits, RunConfig(model_dir=str(tmp_path / "whole"),
                                              precision="float32", **NOISY),
                    config=config, strategy=one_replica, model=model)
    metrics = whole.fit(verbose=0)
    end = metrics["steps"]
    per_phase = {"erm": 6, "coteaching": whole.method.steps_per_epoch()}[method]
    assert metrics["complete"] and end == {"erm": 1, "coteaching": 3}[method] * per_phase
    stopped = Trainer(method, digits, RunConfig(model_dir=str(tmp_path / "stopped"),
                                                precision="float32", stop_at_step=end, **NOISY),
                      config=config, strategy=one_replica, model=model).fit(verbose=0)
    assert stopped["complete"] and stopped["steps"] == end
    written = json.load(open(tmp_path / "stopped" / "metrics.json"))
    assert written["steps"] == end and written["evals"][-1]["step"] == end


# ------------------------------------------------------------------ layering
LAYER = {"ops": 0, "models": 1, "data": 1, "settings": 1, "methods": 2, "training": 3,
         "serving": 3,
         "experiments": 4, "reproduce": 4, "cli": 5}


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_layering_ops_models_then_methods_then_training_and_no_absl_flags():
    root = os.path.dirname(mixmatch_tf.__file__)
    bad = []
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).split(os.sep)
            own = LAYER.get(rel[0].removesuffix(".py"))
            for module in _imports(path):
                reads_flags = module in ("absl.flags", "flags") or module.startswith("absl.flags.")
                if reads_flags and rel[0] != "cli":  # only the programs read flags
                    bad.append(f"{os.path.relpath(path, ROOT)} imports {module}")
                parts = module.split(".")
                if own is None or parts[0] != "mixmatch_tf" or len(parts) < 2:
                    continue
                target = LAYER.get(parts[1])
                if target is not None and target > own and not (rel[0], parts[1]) == (
                        "training", "serving"):
                    bad.append(f"{os.path.relpath(path, ROOT)} imports {module}")
    assert not bad, bad


# --------------------------------------------------------- the compile cache
def test_a_new_phase_value_is_used_without_a_retrace(tmp_path, one_replica, digits):
    """Phases of one kind share one compiled loop: a new value in ``Phase.values`` reaches
    the step as a tensor (no retrace, no stale constant); the step is traced once,
    though each call runs it before and inside the while loop (tracing it twice doubled
    a short run's start-up). Another step function under that name is refused."""
    from mixmatch_tf.data.pipeline import train_dataset
    from mixmatch_tf.methods.base import Phase
    tr = Trainer("erm", digits, RunConfig(model_dir=str(tmp_path)), config={"train_steps": 2},
                 strategy=one_replica)
    base = tr.method.phase(0, tr.state, fresh=True)
    traced = []

    def step_fn(state, batch, step, values):
        traced.append(1)  # runs only while tracing
        return {"loss": values["c"] * 1.0}
    iterator = iter(one_replica.distribute_datasets_from_function(
        lambda ctx: train_dataset(tr.source, base.streams, seed=0, salt=0, input_context=ctx)))
    for c in (1.0, 2.0, 0.5):
        phase = Phase(name="scaled", steps=6, streams=base.streams, step_fn=step_fn,
                      values={"c": c})
        for n in (3, 2):
            metrics, _ = tr.loop.run(phase, iterator, n)
            assert metrics["loss"] == c
    assert len(traced) == 1

    def other(state, batch, step, values):
        return {"loss": values["c"] * 2.0}
    with pytest.raises(ValueError, match="'scaled' comes with another step function"):
        tr.loop.run(Phase(name="scaled", steps=6, streams=base.streams, step_fn=other,
                          values={"c": 1.0}), iterator, 1)


def test_training_reads_no_method_config_field_by_name():
    """training/ may read only the fields every method has (TrainConfig), never e.g.
    num_labeled or dropout: methods declare those needs (labeled_split, model_kwargs)."""
    import dataclasses
    from mixmatch_tf.methods.base import TrainConfig
    allowed = {f.name for f in dataclasses.fields(TrainConfig)} | {"to_dict"}
    folder = os.path.join(os.path.dirname(mixmatch_tf.__file__), "training")
    read = set()
    for name in os.listdir(folder):
        if name.endswith(".py"):
            tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
            for node in ast.walk(tree):
                if not isinstance(node, ast.Attribute):
                    continue
                owner = node.value  # ``config.x`` or ``<something but tf>.config.x``
                if (isinstance(owner, ast.Name) and owner.id == "config") or (
                        isinstance(owner, ast.Attribute) and owner.attr == "config"
                        and not (isinstance(owner.value, ast.Name) and owner.value.id == "tf")):
                    read.add(node.attr)
    assert read and read <= allowed, read - allowed


def _data_imports(path):
    """(module-level, function-level) imports of mixmatch_tf.data modules in ``path``."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    top, inner = set(), set()

    def names(node):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mixmatch_tf.data":
                return {f"mixmatch_tf.data.{a.name}" for a in node.names}
            if node.module.startswith("mixmatch_tf.data."):
                return {node.module}
        if isinstance(node, ast.Import):
            return {a.name for a in node.names if a.name.startswith("mixmatch_tf.data.")}
        return set()
    for node in tree.body:
        top |= names(node)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner_node in ast.walk(node):
                inner |= names(inner_node)
    return top, inner


def test_data_modules_import_each_other_without_a_circle():
    """data/ is organised by format (arrays, folders, tfds, the readers, splits) on one
    protocol (dataset.py): its modules import each other at the top, never inside a
    function to dodge a circle, and the graph has no circle."""
    folder = os.path.join(os.path.dirname(mixmatch_tf.__file__), "data")
    modules = {m.name for m in pkgutil.iter_modules([folder])}
    graph = {}
    for name in modules:
        top, inner = _data_imports(os.path.join(folder, name + ".py"))
        inner = {m for m in inner if m.rsplit(".", 1)[1] in modules}
        assert not inner, f"data/{name}.py imports {sorted(inner)} inside a function"
        graph[name] = {m.rsplit(".", 1)[1] for m in top if m.rsplit(".", 1)[1] in modules}
    done, visiting = set(), []

    def visit(name):
        assert name not in visiting, f"import circle: {' -> '.join(visiting + [name])}"
        if name in done:
            return
        visiting.append(name)
        for other in graph[name]:
            visit(other)
        visiting.pop()
        done.add(name)
    for name in sorted(graph):
        visit(name)
    assert {"dataset", "arrays", "folders", "tfds", "streaming", "splits"} <= modules


def test_training_never_asks_which_kind_of_data_it_has():
    """training/ reads the data-set protocol only: no ``streamed`` test anywhere."""
    folder = os.path.join(os.path.dirname(mixmatch_tf.__file__), "training")
    for name in os.listdir(folder):
        if name.endswith(".py"):
            tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
            reads = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                     and n.attr == "streamed"]
            strings = [n for n in ast.walk(tree) if isinstance(n, ast.Constant)
                       and n.value == "streamed"]
            assert not reads and not strings, f"training/{name} tests 'streamed'"
