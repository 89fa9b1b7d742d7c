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
