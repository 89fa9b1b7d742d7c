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
    assert peak.peak_gflops("float32", cores=2, info=zen5) == pytest.approx(2 * 2.6 * 64)
    assert peak.peak_gflops("mixed_bfloat16", cores=2, info=zen5) == pytest.approx(2 * 2.6 * 128)
    assert peak.peak_gflops("float32", cores=1, info=dict(zen5, mhz=0.0)) is None


def test_cpuinfo_is_read_from_the_first_cpu(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n"
                    "cpu MHz\t\t: 2596.096\nflags\t\t: fpu avx2 fma avx512f avx512_bf16\n\n"
                    "processor\t: 1\nvendor_id\t: Other\n")
    read = peak.cpu_info(str(path))
    assert read == info("AuthenticAMD", 26, "fpu avx2 fma avx512f avx512_bf16", mhz=2596.096)
    assert peak.cpu_info(str(tmp_path / "missing")) is None
