"""The CPU's physical peak, from hand-computed cases: cores x clock x FLOPs per cycle."""
import pytest

from mixmatch_tf.cli import peak


def info(vendor, family, flags, mhz=2000.0):
    return {"vendor": vendor, "family": family, "flags": set(flags.split()), "mhz": mhz}


@pytest.mark.parametrize("cpu,expected", [
    (info("GenuineIntel", 6, "avx avx2 fma"), (32, 32)),                      # Haswell..
    (info("AuthenticAMD", 23, "avx avx2 fma"), (32, 32)),                     # Zen 2
    (info("AuthenticAMD", 25, "avx2 fma avx512f avx512_bf16"), (32, 64)),     # Zen 4
    (info("AuthenticAMD", 26, "avx2 fma avx512f avx512_bf16"), (64, 128)),    # Zen 5
    (info("GenuineIntel", 6, "avx2 fma avx512f"), (64, 64)),                  # Skylake-SP
    (info("GenuineIntel", 6, "avx2 fma avx512f avx512_bf16 amx_bf16"), (64, 1024)),  # SPR
    (info("GenuineIntel", 6, "sse4_2 avx"), None),
])
def test_flops_per_cycle_by_instruction_set(cpu, expected):
    assert peak.flops_per_cycle(cpu) == expected


def test_peak_is_cores_times_clock_times_flops_per_cycle():
    zen5 = info("AuthenticAMD", 26, "avx2 fma avx512f avx512_bf16", mhz=2600.0)
    assert peak.peak_gflops("float32", 2, 2600.0, info=zen5) == pytest.approx(2 * 2.6 * 64)
    assert peak.peak_gflops("mixed_bfloat16", 2, 2600.0, info=zen5) == pytest.approx(
        2 * 2.6 * 128)
    assert peak.peak_gflops("float32", 1, None, info=zen5) is None
    assert peak.peak_gflops("float32", 1, 2600.0, info=info("X", 6, "sse2")) is None


def test_the_clock_is_at_least_what_a_float32_matmul_implies():
    """A 2.6 GHz Zen 5 whose two cores multiply at 483 GFLOP/s ran at 483 / (2 x 64) =
    3.77 GHz at least; a slower matmul leaves the reported clock."""
    zen5 = info("AuthenticAMD", 26, "avx2 fma avx512f avx512_bf16", mhz=2600.0)
    assert peak.effective_mhz(483.0, 2, info=zen5) == pytest.approx(3773.4375)
    assert peak.effective_mhz(100.0, 2, info=zen5) == 2600.0
    assert peak.effective_mhz(483.0, 2, info=info("X", 6, "sse2")) is None


def test_cpuinfo_is_read_from_the_first_cpu(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n"
                    "cpu MHz\t\t: 2596.096\nflags\t\t: fpu avx2 fma avx512f avx512_bf16\n\n"
                    "processor\t: 1\nvendor_id\t: Other\n")
    read = peak.cpu_info(str(path))
    assert read == info("AuthenticAMD", 26, "fpu avx2 fma avx512f avx512_bf16", mhz=2596.096)
    assert peak.cpu_info(str(tmp_path / "missing")) is None


ZEN5 = info("AuthenticAMD", 26, "avx2 fma avx512f avx512bw avx512_bf16")
SPR = info("GenuineIntel", 6, "avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile")


@pytest.mark.parametrize("cpu,isa,expected", [
    (ZEN5, "all", (64, 128)),
    (ZEN5, "avx2", (32, 32)),              # AVX2 + FMA kernels; bf16 computed in float32
    (ZEN5, "avx512_core", (64, 64)),       # AVX-512 without its bf16 products
    (ZEN5, "avx512_core_bf16", (64, 128)),
    (SPR, "avx512_core_bf16", (64, 128)),  # AMX off
    (SPR, "avx2", (32, 32)),
    (SPR, "ALL", (64, 1024)),              # a cap the table does not know leaves all
])
def test_a_cap_removes_the_instruction_sets_above_it(cpu, isa, expected):
    assert peak.flops_per_cycle(peak.capped(cpu, isa)) == expected
    assert cpu["flags"] >= peak.capped(cpu, isa)["flags"]


def test_limit_isa_sets_onednn_and_pytorch_caps_and_max_isa_reads_them():
    environ = {"ATEN_CPU_CAPABILITY": "avx512"}
    assert peak.max_isa(environ) == "all"
    peak.limit_isa("avx2", environ)
    assert environ == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    assert peak.max_isa(environ) == "avx2"
    peak.limit_isa("avx512_core_bf16", environ)
    assert environ == {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "ATEN_CPU_CAPABILITY": "avx512"}
    peak.limit_isa("all", environ)
    assert environ == {"ONEDNN_MAX_CPU_ISA": "ALL"}
    with pytest.raises(ValueError, match="'avx3'.*valid: all, avx2, avx512_core"):
        peak.limit_isa("avx3", environ)


CAPPED_CONV = """
import tensorflow as tf
from mixmatch_tf.cli import peak
peak.limit_isa("avx2")  # after TensorFlow's import, before its first kernel, as the benchmark
x = tf.random.normal([4, 8, 8, 16])
with tf.GradientTape() as tape:
    w = tf.Variable(tf.random.normal([3, 3, 16, 16]))
    y = tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME"))
tape.gradient(y, w).numpy()
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    print("torch", torch.backends.cpu.get_cpu_capability())
"""


@pytest.mark.skipif("avx2" not in (peak.cpu_info() or {"flags": ()})["flags"],
                    reason="an x86 CPU with AVX2")
def test_the_cap_holds_for_tensorflows_onednn_kernels_and_pytorch():
    """oneDNN's own log names the instruction set of every kernel it ran."""
    import re
    from conftest import run_script
    done = run_script(["-c", CAPPED_CONV],
                      env={"ONEDNN_VERBOSE": "1", "TF_ENABLE_ONEDNN_OPTS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr
    kernels = re.findall(r"^onednn_verbose,.*,exec,cpu,convolution,([^,]+),", log, re.M)
    assert len(kernels) >= 2, log[-2000:]  # the forward pass and the weights' gradient
    assert all(k.endswith(":avx2") for k in kernels), kernels
    assert re.search(r"^onednn_verbose,.*,isa:Intel AVX2$", log, re.M), log[-2000:]
    if "torch " in done.stdout:  # with the bench extra: PyTorch's own kernels too
        assert "torch AVX2" in done.stdout


def test_the_benchmark_refuses_bf16_under_an_avx2_cap_in_one_line():
    """oneDNN cannot build TensorFlow's bf16 kernels under the cap: the process would abort."""
    from conftest import run_script
    done = run_script(["scripts/benchmark.py", "--max_cpu_isa=avx2", "--precision=mixed_bfloat16",
                       "--method=mixup"], timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --precision=mixed_bfloat16 cannot run under --max_cpu_isa=avx2: TensorFlow's "
        "bf16 kernels need AVX-512 there; valid: float32, auto, or a cap of avx512_core or above")
