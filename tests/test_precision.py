"""--precision=auto: the choice by hardware, the slow-precision warning, the recorded precision."""
import json
import logging
import time

import pytest

from mixmatch_tf.training import RunConfig, Trainer, load_run
from mixmatch_tf.training import precision as precision_lib
from mixmatch_tf.training.precision import auto_precision, resolve, slow_precision_warning

AVX2 = frozenset("fpu sse2 avx avx2 fma f16c".split())
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}  # no bf16 instructions
TINY = {"train_steps": 1, "eval_every": 1}


@pytest.mark.parametrize("flags,capability,expected", [
    (AVX2, None, "float32"),                           # this project's 2-core machines
    (AVX512, None, "float32"),                         # AVX-512 without its bf16 extension
    (AVX512 | {"avx512_bf16"}, None, "mixed_bfloat16"),  # Cooper Lake, Zen 4
    (AVX512 | {"amx_bf16", "amx_tile"}, None, "mixed_bfloat16"),  # Sapphire Rapids
    (frozenset(), None, "float32"),                    # flags unreadable
    (AVX2, (7, 0), "mixed_float16"),                   # V100: tensor cores
    (AVX2, (8, 6), "mixed_float16"),
    (AVX512 | {"avx512_bf16"}, (6, 1), "float32"),     # P100/GTX 10xx: the GPU trains, no tensor cores
    (AVX2, (10, 0), "mixed_float16"),
])
def test_auto_precision_by_hardware(flags, capability, expected):
    assert auto_precision(flags, capability) == expected


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_bf16 fma\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx2 avx512_bf16 fma\n")
    assert precision_lib.cpu_flags(str(info)) == {"fpu", "avx2", "avx512_bf16", "fma"}
    assert precision_lib.cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_resolve_keeps_explicit_and_resumed_precisions():
    assert resolve("mixed_bfloat16", None, AVX2, None) == "mixed_bfloat16"
    assert resolve("float32", {"precision": "mixed_bfloat16"}, AVX2, None) == "float32"
    assert resolve("auto", None, AVX2, None) == "float32"
    assert resolve("auto", None, AVX2 | {"amx_bf16"}, None) == "mixed_bfloat16"
    # a resume keeps the run's precision whatever this machine would pick
    assert resolve("auto", {"precision": "mixed_bfloat16"}, AVX2, None) == "mixed_bfloat16"
    assert resolve("auto", {"precision": "float32"}, AVX2, (8, 0)) == "float32"


def test_slow_precision_warning_says_by_how_much():
    warning = slow_precision_warning("mixed_bfloat16", AVX2, None, probe=lambda dtype: 7.26)
    assert "\n" not in warning
    assert "mixed_bfloat16" in warning and "slower than float32" in warning
    assert "bfloat16 convolution with its gradients took 7.3x as long as a float32 one" in warning
    assert "--precision=auto picks float32" in warning
    assert "avx512_bf16" in warning  # names the instructions it lacks
    # no figure when the probe fails; still the warning
    def broken(dtype):
        raise RuntimeError("no device")
    warning = slow_precision_warning("mixed_bfloat16", AVX2, None, probe=broken)
    assert "slower than float32" in warning and "x as long" not in warning
    # mixed_float16 on a CPU without float16 instructions
    warning = slow_precision_warning("mixed_float16", AVX512 | {"avx512_bf16"}, None,
                                     probe=lambda dtype: 3.0)
    assert "float16 convolution with its gradients took 3.0x" in warning and "picks mixed_bfloat16" in warning


@pytest.mark.parametrize("precision,flags,capability", [
    ("float32", AVX2, None), ("mixed_bfloat16", AVX512 | {"avx512_bf16"}, None),
    ("mixed_bfloat16", AVX2 | {"amx_bf16"}, None), ("mixed_float16", AVX2, (7, 5)),
    ("mixed_bfloat16", AVX2, (8, 0))])  # a GPU trains: the CPU's instructions do not matter
def test_no_warning_where_the_precision_is_native(precision, flags, capability):
    def never(dtype):
        raise AssertionError("no probe without a warning")
    assert slow_precision_warning(precision, flags, capability, probe=never) is None


def test_the_convolution_probe_is_short():
    t = time.perf_counter()
    slowdown = precision_lib.conv_slowdown("bfloat16")
    assert time.perf_counter() - t < 5.0  # < 1 s unloaded; a shared CPU may stretch it
    assert slowdown > 0


def test_auto_keeps_bf16_only_where_the_probe_finds_it_not_slower():
    bf16 = AVX512 | {"avx512_bf16"}
    assert resolve("auto", None, bf16, None, probe=lambda dtype: 0.6) == "mixed_bfloat16"
    assert resolve("auto", None, bf16, None, probe=lambda dtype: 1.0) == "mixed_bfloat16"
    # the flags say bf16, the kernels do not use it (a build without them, a hypervisor)
    assert resolve("auto", None, bf16, None, probe=lambda dtype: 3.5) == "float32"

    def never(dtype):
        raise AssertionError("no probe where auto picks float32 or the run is resumed")
    assert resolve("auto", None, AVX2, None, probe=never) == "float32"
    assert resolve("auto", {"precision": "float32"}, bf16, None, probe=never) == "float32"
    assert resolve("mixed_bfloat16", None, AVX2, None, probe=never) == "mixed_bfloat16"
    assert resolve("auto", None, bf16, (8, 0), probe=never) == "mixed_float16"  # a GPU trains


def test_the_probe_runs_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(precision_lib, "conv_slowdown", lambda dtype: calls.append(dtype) or 0.5)
    precision_lib.measured_slowdown.cache_clear()
    try:
        bf16 = AVX2 | {"amx_bf16"}
        assert [resolve("auto", None, bf16, None) for _ in range(3)] == ["mixed_bfloat16"] * 3
        assert calls == ["bfloat16"]
    finally:
        precision_lib.measured_slowdown.cache_clear()


def test_policy_scope_sets_the_policy_inside_and_restores_it_after_an_error():
    import keras
    before = keras.config.dtype_policy().name
    with precision_lib.policy_scope("mixed_bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        layer = keras.layers.Dense(2)
    assert keras.config.dtype_policy().name == before
    assert layer.compute_dtype == "bfloat16"  # the layer keeps the policy it was made with
    with pytest.raises(RuntimeError, match="boom"):
        with precision_lib.policy_scope("mixed_bfloat16"):
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == before


@pytest.mark.parametrize("layers,expected", [
    ((), "float32"),
    (("mixed_bfloat16",), "mixed_bfloat16"),
    (("float32", "mixed_bfloat16"), "mixed_bfloat16"),  # one 16-bit product makes it mixed
    (("mixed_float16",), "mixed_float16"),
])
def test_computed_precision_reads_the_dot_products_of_the_traced_pass(layers, expected):
    import keras
    policies = list(layers) or ["float32"]
    net = keras.Sequential([keras.Input((6, 6, 2)),
                            keras.layers.Conv2D(3, 3, dtype=policies[0]),
                            keras.layers.Flatten(),
                            keras.layers.Dense(4, dtype=policies[-1])])
    assert precision_lib.computed_precision(net, (6, 6, 2)) == expected
    no_products = keras.Sequential([keras.Input((3,)), keras.layers.ReLU()])
    assert precision_lib.computed_precision(no_products, (3,)) is None


def make(folder, strategy, data, **run):
    return Trainer("erm", data, RunConfig(model_dir=str(folder), steps_per_call=1, **run),
                   config=TINY, strategy=strategy)


def test_the_precision_used_is_recorded(tmp_path, one_replica, digits):
    expected = resolve("auto")  # this machine's choice, probe included
    assert RunConfig(model_dir="x").precision == "auto"  # the default
    trainer = make(tmp_path, one_replica, digits)
    assert trainer.run.precision == expected
    metrics = trainer.fit()
    assert json.load(open(tmp_path / "run.json"))["precision"] == expected
    assert metrics["precision"] == expected
    assert json.load(open(tmp_path / "metrics.json"))["precision"] == expected
    assert load_run(str(tmp_path), strategy=one_replica).run.precision == expected


def test_auto_resumes_the_recorded_precision_and_warns(tmp_path, one_replica, digits, caplog,
                                                       monkeypatch):
    make(tmp_path, one_replica, digits).fit()
    settings = json.load(open(tmp_path / "run.json"))
    settings["precision"] = "mixed_bfloat16"  # as if started with --precision=mixed_bfloat16
    (tmp_path / "run.json").write_text(json.dumps(settings))
    monkeypatch.setattr(precision_lib, "cpu_flags", lambda: AVX2)
    monkeypatch.setattr(precision_lib, "gpu_capability", lambda: None)
    monkeypatch.setattr(precision_lib, "measured_slowdown", lambda dtype: 7.5)
    with caplog.at_level(logging.WARNING):
        trainer = make(tmp_path, one_replica, digits)
    assert trainer.run.precision == "mixed_bfloat16"
    assert int(trainer.step) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and "slower than float32" in r.getMessage()]
    assert len(warnings) == 1 and "7.5x" in warnings[0]
    # reading the run (evaluate, export) does not warn
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_run(str(tmp_path), strategy=one_replica).run.precision == "mixed_bfloat16"
    assert "slower than float32" not in caplog.text


def test_runs_that_recorded_no_precision_resume_in_float32(tmp_path, one_replica, digits,
                                                           monkeypatch):
    make(tmp_path, one_replica, digits, precision="float32").fit()
    settings = json.load(open(tmp_path / "run.json"))
    del settings["precision"], settings["format"]  # a run folder of an older version
    (tmp_path / "run.json").write_text(json.dumps(settings))
    # even where auto would pick bf16 for a new run
    monkeypatch.setattr(precision_lib, "cpu_flags", lambda: AVX2 | {"amx_bf16"})
    monkeypatch.setattr(precision_lib, "gpu_capability", lambda: None)
    trainer = make(tmp_path, one_replica, digits)
    assert trainer.run.precision == "float32" and int(trainer.step) == 1
    assert trainer.write_metrics()["precision"] == "float32"
    assert load_run(str(tmp_path), strategy=one_replica).run.precision == "float32"
