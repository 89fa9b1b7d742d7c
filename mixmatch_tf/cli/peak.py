"""The CPU's physical peak FLOP rate, float32 and bfloat16, from its instruction sets,
and oneDNN's cap on the instruction sets the kernels may use.

A step's achieved rate means little across machines until it is set against what the
cores can do at most: cores x clock x FLOPs per cycle and core, where a fused
multiply-add counts two FLOPs. Per cycle and core, by what the CPU reports:

* AVX2 + FMA (two 256-bit FMA pipes: Intel since Haswell, AMD Zen 1-3): float32 32,
  bfloat16 32 (no bf16 instructions: it is computed in float32);
* AVX-512 on AMD Zen 4 (family 25 with avx512f: 512-bit work on 256-bit pipes):
  float32 32, bfloat16 64 with avx512_bf16 (two bf16 products per float32 lane);
* AVX-512 with two 512-bit FMA pipes (Intel Xeon since Skylake-SP; AMD Zen 5, family
  26): float32 64, bfloat16 128 with avx512_bf16;
* AMX (amx_bf16, Intel Xeon since Sapphire Rapids): bfloat16 1024 (a 16x16x32 tile
  product every 16 cycles).

The clock: /proc/cpuinfo reports the nominal one (under a hypervisor there is no
other), but cores boost above it -- on a 2.6 GHz Zen 5 a float32 matmul ran at what
3.7 GHz would give. So the clock taken is the higher of the reported one and the one
a float32 matmul's measured rate implies (``effective_mhz``): a lower bound on the
true clock, making the peak a lower bound on the true peak. The cores are those the
process may run on (a virtual CPU counts as a core: a hypervisor does not say whether
two share one). Written out here because no library reports these numbers.

The cap (``limit_isa``): oneDNN, inside TensorFlow and PyTorch alike, uses no
instruction set above ``ONEDNN_MAX_CPU_ISA``, and PyTorch's own vectorised kernels none
above ``ATEN_CPU_CAPABILITY``; both are read when the first kernel is chosen. Capped at
``avx2``, an AVX-512 machine runs the kernels an AVX2 + FMA CPU runs (``capped``: the
flags the peak is computed from lose what the cap forbids). TensorFlow's other kernels
are built for AVX and never use AVX-512 anyway.
"""
import os

PROC_CPUINFO = "/proc/cpuinfo"
# ONEDNN_MAX_CPU_ISA's values (lower case) -> prefixes of the /proc/cpuinfo flags above
# the cap, and the ATEN_CPU_CAPABILITY of the same instruction set (None: PyTorch's own).
ISA_CAPS = {
    "all": ((), None),
    "avx2": (("avx512", "amx"), "avx2"),
    "avx512_core": (("avx512_bf16", "amx"), "avx512"),
    "avx512_core_bf16": (("amx",), "avx512"),
}


def cpu_info(path=PROC_CPUINFO):
    """vendor, family, flags and clock (MHz) of the first CPU in /proc/cpuinfo, or None."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    try:
        return {"vendor": fields.get("vendor_id", ""),
                "family": int(fields.get("cpu family", "0")),
                "flags": set(fields.get("flags", "").split()),
                "mhz": float(fields.get("cpu MHz", "0"))}
    except ValueError:
        return None


def max_isa(environ=None):
    """The cap in force: ``ONEDNN_MAX_CPU_ISA`` in lower case, or "all" when unset."""
    environ = os.environ if environ is None else environ
    return environ.get("ONEDNN_MAX_CPU_ISA", "all").lower()


def limit_isa(isa, environ=None):
    """Caps the instruction sets of oneDNN's and PyTorch's kernels at ``isa`` (a key of
    ``ISA_CAPS``), for this process: call it before the first kernel runs."""
    if isa not in ISA_CAPS:
        raise ValueError(f"unknown instruction-set cap {isa!r}; valid: {', '.join(ISA_CAPS)}")
    environ = os.environ if environ is None else environ
    environ["ONEDNN_MAX_CPU_ISA"] = isa.upper()
    aten = ISA_CAPS[isa][1]
    if aten:
        environ["ATEN_CPU_CAPABILITY"] = aten
    else:
        environ.pop("ATEN_CPU_CAPABILITY", None)


def capped(info, isa):
    """``info`` (``cpu_info()``) without the flags of instruction sets above the cap
    ``isa``; a cap ``ISA_CAPS`` does not know leaves it whole."""
    above = ISA_CAPS.get(isa, ((), None))[0]
    return dict(info, flags={f for f in info["flags"] if not f.startswith(above)})


def flops_per_cycle(info):
    """(float32, bfloat16) FLOPs per cycle and core (the table above), or None."""
    flags = info["flags"]
    if "avx512f" in flags:
        zen4 = info["vendor"] == "AuthenticAMD" and info["family"] < 26
        f32 = 32 if zen4 else 64
    elif "avx2" in flags and "fma" in flags:
        f32 = 32
    else:
        return None
    bf16 = 2 * f32 if "avx512_bf16" in flags else f32
    if "amx_bf16" in flags:
        bf16 = 1024
    return f32, bf16


def effective_mhz(matmul_gflops, cores, info=None):
    """The clock the cores ran at, at least: the reported one, or the one at which the
    table's float32 FLOPs per cycle give ``matmul_gflops`` (measured), if higher; None
    when the CPU is not one the table knows."""
    info = cpu_info() if info is None else info
    per_cycle = flops_per_cycle(info) if info else None
    if per_cycle is None:
        return None
    implied = (matmul_gflops or 0.0) * 1e3 / (cores * per_cycle[0])
    return max(info["mhz"], implied) or None


def peak_gflops(precision, cores, mhz, info=None):
    """The physical peak in GFLOP/s of ``cores`` cores at ``mhz`` and ``precision``
    (mixed_bfloat16 -> bfloat16, else float32), or None for a CPU the table lacks."""
    info = cpu_info() if info is None else info
    per_cycle = flops_per_cycle(info) if info else None
    if per_cycle is None or not mhz:
        return None
    rate = per_cycle[1] if precision == "mixed_bfloat16" else per_cycle[0]
    return cores * mhz * 1e6 * rate / 1e9
