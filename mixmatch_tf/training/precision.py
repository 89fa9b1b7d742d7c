"""The precision a run trains under: ``--precision=auto``, applying it to the networks
a run builds, reading back the precision they compute in, the slow-precision warning.

``auto`` picks by what the hardware has (``auto_precision``), checked where it
would pick a 16-bit type on a CPU (``bf16_pays_off``):

* GPUs of compute capability 7.0 or more (tensor cores): ``mixed_float16``;
  older GPUs: ``float32``;
* CPUs with native bf16 instructions (the ``avx512_bf16`` or ``amx_bf16`` flags
  of ``/proc/cpuinfo``): ``mixed_bfloat16``, if a short convolution probe
  (``conv_slowdown``, once per process) finds bf16 not slower than float32 here
  (within ``BF16_KEEP_RATIO``);
  float32 otherwise (a TensorFlow build or hypervisor that does not use them);
* other CPUs: ``float32``. Without those instructions oneDNN emulates bf16 dot
  products by conversions, and a bf16 step runs several times slower than a
  float32 one (16-20 times on an AVX2 + FMA CPU, issue 14).

A resumed run keeps the precision recorded in its ``run.json`` (``identity.migrate``
gives a run folder of an older version that records none its version's default,
float32).
An explicit mixed precision on a CPU without the instructions for it trains as
asked, after a one-line warning with the slowdown a short convolution probe measured.

The library never leaves Keras' process-wide dtype policy changed: a run's
precision is set only while its networks are built (``policy_scope``), so each
layer keeps the policy it was built with and the caller's policy is as it was.
"""
import contextlib
import functools
import time

import keras
import tensorflow as tf
from absl import logging

AUTO = "auto"
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# /proc/cpuinfo flags of x86 bf16 dot-product instructions (AVX512-BF16, AMX-BF16).
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")
# ... and of native float16 arithmetic (AVX512-FP16, AMX-FP16).
NATIVE_FP16 = ("avx512_fp16", "amx_fp16")
TENSOR_CORES = (7, 0)  # the first compute capability with float16 tensor cores (Volta)


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (``flags`` lines of /proc/cpuinfo); empty where unreadable."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def gpu_capability():
    """The lowest compute capability (major, minor) of the visible GPUs, or None."""
    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(cc) if cc else (0, 0))
    return min(capabilities) if capabilities else None


def auto_precision(flags, capability):
    """The precision ``auto`` picks (pure).

    Args:
      flags: the CPU's feature flags (``cpu_flags()``).
      capability: the lowest GPU compute capability (major, minor), or None
        without GPUs.

    Returns:
      "mixed_float16" on GPUs with tensor cores, "mixed_bfloat16" on CPUs with
      native bf16 instructions, else "float32".
    """
    if capability is not None:
        return "mixed_float16" if tuple(capability) >= TENSOR_CORES else "float32"
    return "mixed_bfloat16" if any(f in flags for f in NATIVE_BF16) else "float32"


def resolve(requested, saved=None, flags=None, capability=None, probe=None):
    """The precision a run trains under.

    Args:
      requested: "auto" or one of ``PRECISIONS``.
      saved: the run.json settings of the run to resume (as ``identity.migrate``
        reads them), or None for a new run.
      flags, capability: the hardware (``cpu_flags()``, ``gpu_capability()`` when None).
      probe: ``fn(dtype) -> slowdown`` for ``bf16_pays_off`` (``conv_slowdown``
        when None).

    Returns:
      ``requested`` unless it is "auto"; then the resumed run's recorded
      precision, or for a new run ``auto_precision`` of this machine, float32
      where that is a 16-bit type on a CPU that the probe finds slower in it.
    """
    if requested != AUTO:
        return requested
    if saved is not None:
        return saved["precision"]
    if flags is None:
        flags, capability = cpu_flags(), gpu_capability()
    choice = auto_precision(flags, capability)
    if capability is None and choice == "mixed_bfloat16" and not bf16_pays_off(probe):
        return "float32"
    return choice


# auto keeps bf16 unless its probe step takes more than this times float32's: native
# bf16 measured 0.56-0.70 (Zen 5), an emulated one 16-24x (AVX2), so the margin
# over 1 is for a probe timed on a loaded machine, never a choice between the two.
BF16_KEEP_RATIO = 1.25


def bf16_pays_off(probe=None):
    """Whether bf16 is not slower than float32 on this CPU, by ``conv_slowdown``.

    The CPU flags say what the processor has, not what TensorFlow's kernels use
    (a build without oneDNN's bf16 paths, a hypervisor hiding AMX state): on an
    AVX-512 + bf16 CPU a WRN-28-2 MixMatch step ran 1.5x faster in bf16 (73.4 vs
    48.4 img/s), where an emulated bf16 runs 16-20 times slower. ``probe`` (for
    tests) replaces the measurement, which is made once per process.
    """
    slowdown = probe("bfloat16") if probe is not None else measured_slowdown("bfloat16")
    keep = slowdown <= BF16_KEEP_RATIO
    logging.info("--precision=auto: a bfloat16 convolution step took %.2fx float32's time "
                 "here, so %s", slowdown, "mixed_bfloat16" if keep else "float32")
    return keep


@functools.lru_cache(maxsize=None)
def measured_slowdown(dtype):
    """``conv_slowdown(dtype)`` measured once per process (0.0 where it fails: the CPU
    flags are trusted then)."""
    try:
        return conv_slowdown(dtype)
    except Exception as e:  # noqa: BLE001 -- no figure: trust the CPU flags
        logging.debug("precision probe failed: %s", e)
        return 0.0


@contextlib.contextmanager
def policy_scope(precision):
    """Keras' dtype policy is ``precision`` inside the block and what it was after it.

    Layers take the policy in force when they are made and keep it, so building
    a run's networks inside this block gives them the run's precision without
    touching the policy of the caller's own models (Keras keeps the policy per
    thread; this restores it even when building fails).
    """
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


# Ops whose input type is the precision a network computes in (its dot products).
_DOT_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D", "Conv3D",
            "Conv", "DepthwiseConv2dNative", "Einsum")
_BY_DTYPE = {tf.bfloat16: "mixed_bfloat16", tf.float16: "mixed_float16"}


def computed_precision(network, input_shape):
    """The precision ``network`` computes in, read off its traced forward pass.

    "mixed_bfloat16" (or "mixed_float16") when any of its convolutions or
    matrix products takes that type, "float32" when they all take float32, None
    when the pass has none (nothing to tell). Traced, not run: a forward pass
    of a batch of two ``input_shape`` examples is built as a graph, whatever
    the network's class or the dtypes its author pinned on its layers.
    """
    forward = tf.function(lambda x: network(x, training=False))
    graph = forward.get_concrete_function(
        tf.TensorSpec((2,) + tuple(input_shape), tf.float32)).graph
    dtypes = {op.get_attr("T") for op in graph.get_operations() if op.type in _DOT_OPS}
    if not dtypes:
        return None
    for dtype, name in _BY_DTYPE.items():
        if dtype in dtypes:
            return name
    return "float32"


def conv_slowdown(dtype, reps=7):
    """Seconds of a small convolution's forward pass and both its gradients (the bulk
    of a train step) in ``dtype`` over float32's, on the CPU (best of ``reps`` each,
    the two timed in turn so that load from other processes falls on both and the
    best of each is a quiet moment's; about 1 s in all). A matmul alone hides the
    gap: on an AVX2 CPU a bf16 matmul took 1.3x float32's time, a bf16 convolution
    step 24x, and a WRN-28-2 train step 16x (issue 14)."""
    @tf.function(autograph=False)
    def step(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = tf.nn.conv2d(x, w, 1, "SAME")
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        return tape.gradient(loss, [x, w])

    dtypes = (tf.as_dtype(dtype), tf.float32)
    times = {dt: [] for dt in dtypes}
    with tf.device("/CPU:0"):
        inputs = {dt: (tf.cast(tf.random.stateless_normal([16, 16, 16, 64], [0, 1]), dt),
                       tf.cast(tf.random.stateless_normal([3, 3, 64, 64], [0, 2]), dt))
                  for dt in dtypes}
        for dt in dtypes:
            [g.numpy() for g in step(*inputs[dt])]  # tracing, kernel selection, first touch
        for _ in range(reps):
            for dt in dtypes:
                t = time.perf_counter()
                [g.numpy() for g in step(*inputs[dt])]
                times[dt].append(time.perf_counter() - t)
    return min(times[dtypes[0]]) / min(times[tf.float32])


def slow_precision_warning(precision, flags, capability, probe=None):
    """A one-line warning when ``precision`` runs on a CPU without instructions for
    it (so slower than float32), else None.

    Args:
      precision: the precision the run trains under.
      flags, capability: the hardware, as for ``auto_precision``.
      probe: ``fn(dtype) -> slowdown`` timing that dtype's convolution step
        against float32's (``measured_slowdown`` when None); its figure goes into
        the warning (left out if it raises or measures nothing).
    """
    if capability is not None or precision == "float32":
        return None
    dtype, native = {"mixed_bfloat16": ("bfloat16", NATIVE_BF16),
                     "mixed_float16": ("float16", NATIVE_FP16)}[precision]
    if any(f in flags for f in native):
        return None
    try:
        slowdown = (probe or measured_slowdown)(dtype)
    except Exception as e:  # noqa: BLE001 -- the warning stands without the figure
        logging.debug("precision probe failed: %s", e)
        slowdown = 0.0
    measured = (f"; a {dtype} convolution with its gradients took {slowdown:.1f}x as long as "
                f"a float32 one here" if slowdown else "")
    return (f"precision {precision} on a CPU without native {dtype} instructions "
            f"({', '.join(native)}) trains slower than float32{measured}; --precision=auto "
            f"picks {auto_precision(flags, capability)} for a new run on this machine")


def for_run(requested, saved=None, warn=True):
    """The precision a run trains under (``resolve`` on this machine's hardware);
    with ``warn`` (a run that may start), ``slow_precision_warning`` is logged.
    Nothing global changes: apply it with ``policy_scope``."""
    flags, capability = cpu_flags(), gpu_capability()
    precision = resolve(requested, saved, flags, capability)
    warning = warn and slow_precision_warning(precision, flags, capability)
    if warning:
        logging.warning(warning)
    return precision
