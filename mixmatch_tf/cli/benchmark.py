r"""mixmatch-benchmark: speed of the train steps, the input pipeline, DivideMix's GMM.

  mixmatch-benchmark                      # the CIFAR methods, float32 and auto's choice
  mixmatch-benchmark --method=mixmatch --precision=float32 --steps=10
  mixmatch-benchmark --method=mixup_imagenet --precision=float32 --steps=2 --warmup=1

(``python scripts/benchmark.py`` is the same program.)
Each method runs on its paper model and batch with random CIFAR-shaped data
(MixMatch: WRN-28-2, 64 labeled + 2 x 64 unlabeled; DivideMix: PreAct ResNet-18,
64 + 64 with both networks' guessing passes; mixup: PreAct ResNet-18, 128), through
the same Trainer, pipeline and compiled loop as training. One ``key=value`` line per
method and precision:

  method=mixmatch model=wrn28_2 precision=float32 train_images_per_s=... step_seconds=...
  clean_steps=... timed_steps=... reference_images_per_s=... ratio=...
  pipeline_images_per_s=... gflops_per_s=... matmul_gflops_per_s=... matmul_fraction=...
  peak_gflops_per_s=... peak_fraction=... max_cpu_isa=...

``mixup_imagenet`` (asked for by name: slow on a CPU) is the mixup paper's
ImageNet step: ResNet-50 at 224 x 224 x 3 over 1000 classes, alpha 0.2, a batch of
64 (one replica's), on a generated ImageNet-layout folder of JPEG files
(``write_jpeg_folder``: ``train/<wnid>/*.JPEG`` and ``val/``; 1000 class folders,
since the network's head gets one output per class of the data, of one
photo-sized JPEG each, 300-500 pixels a side, about 100 KB) streamed exactly as
``train.py --dataset=folder:DIR --method=mixup --model=resnet50 --image_size=224``
streams it. Its ``pipeline_images_per_s`` is the streaming pipeline alone on those
files: read, decode (the crop's blocks only), random-resized crop, flip,
normalisation, mixing, batching; ``jpeg_kb`` is the files' mean size. As in
training, the timed steps' own batches are decoded meanwhile on the same cores.

``train_images_per_s`` counts the images a step trains on (MixMatch 192, DivideMix's
256 mixed images, mixup 128, mixup_imagenet 64), from the median time of ``--steps``
timed steps after ``--warmup`` calls. ``gflops_per_s`` is the achieved rate of the
step's conv/dense work (forward passes x1, trained passes x3) against a large matmul
of the same precision timed in the same run (``matmul_gflops_per_s``) and against
the CPU's physical peak (``peak_gflops_per_s``: cores x clock x FLOPs per cycle of
its vector units, ``mixmatch_tf/cli/peak.py``), so numbers compare across machines.
DivideMix also reports its per-sample loss pass over ``--loss_pass_images`` images
and its GMM fit on 50,000 of those losses (resampled when the pass was shorter),
beside scikit-learn's GaussianMixture on the same losses (medians of 5 fits).

PyTorch reference (``--torch_reference``, on a CPU, when ``torch`` imports:
``pip install -e ".[bench]"``): the same network, batch shapes, losses and
optimizer written as the reference implementations' own training loops write
them (``mixmatch_tf/cli/torch_reference.py`` says exactly what each step does), on
random inputs held in memory, with as many threads as TensorFlow's intra-op pool
(``torch.set_num_threads``), under CPU autocast for the mixed precisions. Its
steps alternate with ours -- one of ours, one of its -- and the line gets
``reference_images_per_s`` and ``ratio`` (ours / reference).

Only clean steps count: a step is clean when the rest of the machine used at most a
tenth of a core meanwhile (``mixmatch_tf/cli/load.py``: /proc/stat's busy and steal
time less our own CPU time). Steps are timed until each side has ``--steps`` clean
ones, or ``--max_rounds`` of each ran; then ``clean_steps`` and
``reference_clean_steps`` say how many were clean, and without enough clean steps on
both sides there is no ``ratio`` (a warning says how loaded the machine was): on a
loaded machine the two sides slow down by different factors.

``--max_cpu_isa=avx2`` times, on a CPU with AVX-512, the kernels an AVX2 + FMA CPU
runs: oneDNN's (ours and the reference's) and PyTorch's own are capped at AVX2
(``mixmatch_tf/cli/peak.py``), ``auto`` picks by the instruction sets left, and the
physical peak is the AVX2 one. It is the same code on the same cores, not a
different CPU: caches and clocks stay this machine's.
"""
import os
import statistics
import tempfile
import time

import numpy as np
from absl import app, flags, logging

from mixmatch_tf import cli
from mixmatch_tf.cli import load, peak


def define_flags():
    flags.DEFINE_list("method", ["mixmatch", "dividemix", "mixup"],
                      "Entries to time: mixmatch, dividemix, mixup (CIFAR-shaped data in memory), "
                      "mixup_imagenet (ResNet-50 at 224 on generated JPEG files, streamed; minutes "
                      "per entry on a CPU, so only when asked for).")
    flags.DEFINE_list("precision", ["float32", "auto"],
                      "Precisions: float32, mixed_bfloat16, mixed_float16, auto (the one "
                      "--precision=auto trains under on this machine; timed once if it is float32).")
    flags.DEFINE_integer("steps", 10, "Timed steps (the median step time is reported).")
    flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, autotuning).")
    flags.DEFINE_integer("max_rounds", None, "Most timed calls of each side while waiting for "
                         "--steps clean ones (the rest of the machine idle). Default: 3 x "
                         "the calls --steps needs.")
    flags.DEFINE_integer("steps_per_call", 1, "Train steps per tf.function call.")
    flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")
    flags.DEFINE_integer("threads", 0, "Intra- and inter-op threads (0: TensorFlow's default).")
    flags.DEFINE_integer("loss_pass_images", 50000, "Images of DivideMix's per-sample loss pass.")
    flags.DEFINE_integer("pipeline_steps", 30, "Steps drawn to time the input pipeline alone.")
    flags.DEFINE_integer("eval_batch_size", 500, "Batch of the per-sample loss pass.")
    flags.DEFINE_enum("max_cpu_isa", None, list(peak.ISA_CAPS),
                      "Cap the instruction sets of oneDNN's and PyTorch's kernels, ours and the "
                      "reference's alike (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY): avx2 runs "
                      "an AVX2 + FMA CPU's kernels on an AVX-512 one. Default: the "
                      "environment's ONEDNN_MAX_CPU_ISA, else all.")
    flags.DEFINE_bool("torch_reference", True, "Time the PyTorch reference step alongside ours "
                      "(when torch imports and TensorFlow runs on the CPU).")


FLAGS = flags.FLAGS

SETUPS = {  # entry -> (method, model, config, images per step)
    "mixmatch": ("mixmatch", "wrn28_2",
                 {"num_labeled": 4000, "batch_size": 64, "num_augmentations": 2}, 192),
    # the official settings (on data of no paper's table a run would choose these three
    # at its first co-divide, which the benchmark's random division skips)
    "dividemix": ("dividemix", "preact_resnet18", {"batch_size": 64, "warmup_epochs": 0.0,
                                                   "lambda_u": 25.0, "mixup_alpha": 4.0,
                                                   "gmm_per_class": False}, 256),
    "mixup": ("mixup", "preact_resnet18", {"batch_size": 128}, 128),
    # flags/presets/mixup_imagenet/mixup_resnet50_*.cfg but for the batch: alpha 0.2, no
    # decay of batch norm's gamma and beta; 64 images, one replica's share.
    "mixup_imagenet": ("mixup", "resnet50",
                       {"batch_size": 64, "mixup_alpha": 0.2, "weight_decay_bn": False}, 64),
}
# Entries streamed from a generated ImageNet-layout folder of JPEGs instead of CIFAR-shaped
# arrays in memory: entry -> (image_size, classes). The network's head has one output per
# class folder, so there are 1000 folders, of one training JPEG each.
IMAGENET = {"mixup_imagenet": (224, 1000)}


def cifar_like(n, seed=0):
    """Random CIFAR-shaped data (uint8 32x32x3, 10 classes) in an ImageData."""
    from mixmatch_tf.data import ImageData
    rng = np.random.RandomState(seed)
    return ImageData(name="random_cifar", train_images=rng.randint(0, 256, (n, 32, 32, 3), np.uint8),
                     train_labels=rng.randint(0, 10, n).astype(np.int64),
                     test_images=rng.randint(0, 256, (100, 32, 32, 3), np.uint8),
                     test_labels=rng.randint(0, 10, 100).astype(np.int64), num_classes=10,
                     class_names=tuple(str(i) for i in range(10)), augmentation="pad_crop_flip")


def write_jpeg_folder(root, classes, per_class=1, sizes=(300, 500), seed=0):
    """Writes an ImageNet-layout folder of photo-sized JPEG files; returns ``root``.

    ``root/train/n<c>/n<c>_<i>.JPEG``: ``per_class`` files in each of ``classes``
    folders, each of a height and a width drawn from ``sizes`` (ends included): a
    smooth random colour field (bicubic from a grid of 3-8 x 3-8 colours) plus
    Gaussian noise of std 28, at quality 90 with 4:2:0 chroma -- about 0.6 bytes a
    pixel, ~100 KB at 400 x 400, near ImageNet's average file (about 110 KB). Noise
    matters: decoding time grows with the compressed size, which flat images shrink.
    ``root/val/n<c>/`` holds a hard link to the class's first file: the layout needs
    the split, and the benchmark never evaluates.
    """
    import tensorflow as tf
    rng = np.random.default_rng(seed)
    for c in range(classes):
        name = f"n{c:08d}"
        for split in ("train", "val"):
            os.makedirs(os.path.join(root, split, name))
        for i in range(per_class):
            h, w = rng.integers(sizes[0], sizes[1] + 1, 2)
            grid = rng.uniform(0, 255, (1, *rng.integers(3, 9, 2), 3)).astype(np.float32)
            field = tf.image.resize(grid, [h, w], method="bicubic")[0].numpy()
            pixels = field + rng.standard_normal((h, w, 3), dtype=np.float32) * 28
            path = os.path.join(root, "train", name, f"{name}_{i}.JPEG")
            tf.io.write_file(path, tf.io.encode_jpeg(
                np.clip(pixels, 0, 255).astype(np.uint8), quality=90))
        os.link(os.path.join(root, "train", name, f"{name}_0.JPEG"),
                os.path.join(root, "val", name, f"{name}_0.JPEG"))
    return root


def jpeg_folder_data(root, image_size, classes, **kwargs):
    """``write_jpeg_folder(root, classes, **kwargs)`` loaded as ``train.py
    --dataset=folder:ROOT --image_size=...`` loads it: streamed (``--stream=auto``
    streams it too, its images differing in size)."""
    from mixmatch_tf.data import load_dataset
    write_jpeg_folder(root, classes, **kwargs)
    return load_dataset(f"folder:{root}", stream="true", image_size=image_size)


def matmul_gflops(precision, size=2048, reps=10):
    import tensorflow as tf
    dtype = tf.bfloat16 if precision == "mixed_bfloat16" else (
        tf.float16 if precision == "mixed_float16" else tf.float32)
    a = tf.random.normal([size, size], dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def run(x):
        for _ in range(reps):
            x = tf.matmul(x, a) * tf.cast(1e-3, dtype)
        return tf.reduce_sum(tf.cast(x, tf.float32))
    run(a).numpy()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        run(a).numpy()
        times.append(time.perf_counter() - t)
    return 2 * size ** 3 * reps / min(times) / 1e9


def step_flops(entry, trainer):
    """FLOPs of one train step (forward x1 for no-gradient passes, x3 for trained ones)."""
    from mixmatch_tf.models import build_model, forward_flops
    method, model, cfg, _ = SETUPS[entry]
    per_image = forward_flops(build_model(model, trainer.data.image_shape,
                                          trainer.data.num_classes))
    b = cfg["batch_size"]
    if method == "mixmatch":
        k = cfg["num_augmentations"]
        return per_image * (k * b + 3 * (b + k * b))
    if method == "dividemix":
        return per_image * (6 * b + 3 * 4 * b)
    return per_image * 3 * b


def step_caller(trainer, phase, steps_per_call):
    """``call()``: one call of the compiled multi-step loop (``steps_per_call`` steps),
    waited for."""
    import tensorflow as tf
    from mixmatch_tf.data.pipeline import train_dataset
    dist = trainer.strategy.distribute_datasets_from_function(
        lambda ctx: train_dataset(trainer.source, phase.streams, seed=0, salt=1,
                                  transform=phase.transform, input_context=ctx))
    iterator = iter(dist)
    from mixmatch_tf.training.loop import phase_values
    loop = trainer.loop.compiled(phase)  # the very loop fit() runs
    n, values = tf.constant(steps_per_call, tf.int32), phase_values(phase)
    return lambda: loop(iterator, n, values)[0]["loss"].numpy()


def reference_caller(method, precision):
    """``call()``: one PyTorch reference step, or None without torch."""
    try:
        import torch
        from mixmatch_tf.cli import torch_reference
    except ImportError:
        logging.warning("torch does not import (pip install -e '.[bench]'): no PyTorch reference")
        return None
    torch.set_num_threads(tf_threads())
    return torch_reference.reference_step(method, precision)


def compare(ours, reference=None, calls=10, warmup_calls=2, max_rounds=None,
            counters=load.machine_busy_seconds):
    """Times ``ours()`` and ``reference()`` in turn, one call of each per round, until each
    has ``calls`` clean calls (``load.Load.clean``: the rest of the machine stayed idle)
    or ``max_rounds`` (default 3 x ``calls``) rounds ran.

    Returns ``step_seconds`` (the median of our clean calls; of all calls, with
    ``clean_steps`` below ``calls``, if too few were clean), ``clean_steps``, ``load`` (how
    loaded the machine was) and, with a reference, ``reference_step_seconds``,
    ``reference_clean_steps`` and ``ratio`` (reference over ours) -- the ratio only when
    both sides had ``calls`` clean calls: alternating calls does not make a loaded
    machine fair, the two sides degrade differently. Where the load cannot be read (no
    /proc/stat) every call counts and ``clean_steps`` is ``"unknown"``.
    """
    callers = [ours] + ([reference] if reference is not None else [])
    for _ in range(warmup_calls):
        for call in callers:
            call()
    loads = [[] for _ in callers]
    for _ in range(max_rounds or 3 * calls):
        for record, call in zip(loads, callers):
            record.append(load.measured(call, counters)[1])
        if all(sum(x.clean is not False for x in record) >= calls for record in loads):
            break
    out, enough = {}, True
    for prefix, record in zip(("", "reference_"), loads):
        clean = [x for x in record if x.clean is not False]
        known = any(x.clean is not None for x in record)
        enough = enough and len(clean) >= calls
        chosen = clean if len(clean) >= calls else record
        out[prefix + "step_seconds"] = statistics.median(x.seconds for x in chosen)
        out[prefix + "clean_steps"] = len(clean) if known else "unknown"
    out["timed_steps"] = len(loads[0])
    out["load"] = load.summary([x for record in loads for x in record])
    if reference is not None and enough:
        out["ratio"] = out["reference_step_seconds"] / out["step_seconds"]
    return out


def onednn():
    """1 if TensorFlow runs oneDNN's kernels (TF_ENABLE_ONEDNN_OPTS), 0 if not, ? unknown."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        return int(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return "?"


def cores():
    """Cores the step may use: TensorFlow's threads, at most the CPUs of this process."""
    return min(tf_threads(), len(os.sched_getaffinity(0)))


def tf_threads():
    """Threads of TensorFlow's intra-op pool: ``--threads``, or its default (the CPUs
    this process may run on)."""
    import tensorflow as tf
    return (FLAGS.threads or tf.config.threading.get_intra_op_parallelism_threads()
            or len(os.sched_getaffinity(0)))


def time_pipeline(trainer, phase, steps, images_per_step):
    from mixmatch_tf.data.pipeline import train_dataset
    it = iter(train_dataset(trainer.source, phase.streams, seed=0, salt=2,
                            transform=phase.transform))
    next(it)
    t = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * images_per_step / (time.perf_counter() - t)


def benchmark(entry, precision, data, ceiling, device, clock_mhz=None, cpu=None):
    from mixmatch_tf.training import RunConfig, Trainer
    method, model, config, images = SETUPS[entry]
    run = RunConfig(model_dir=tempfile.mkdtemp(prefix="mixmatch_tf_bench_"), precision=precision,
                    jit_compile=FLAGS.jit_compile, eval_batch_size=FLAGS.eval_batch_size,
                    noise_type="sym" if method == "dividemix" else None,
                    noise_rate=0.5 if method == "dividemix" else 0.0)
    trainer = Trainer(method, data, run, config=dict(config, model=model))
    out = {"method": entry, "model": model, "precision": precision}
    extra = {}
    if entry in IMAGENET:
        extra["jpeg_kb"] = float(np.mean([os.path.getsize(f) for f in data.train_files])) / 1024
    if method == "dividemix":
        loss_fn = trainer.method._loss_fns[1]
        trainer.map_train_set(loss_fn)  # traces and caches the batches
        t = time.perf_counter()
        losses = trainer.map_train_set(loss_fn)
        extra["loss_pass_seconds"] = time.perf_counter() - t
        extra["loss_pass_images_per_s"] = len(losses) / extra["loss_pass_seconds"]
        normed = (losses - losses.min()) / max(1e-12, losses.max() - losses.min())
        extra.update(time_gmm(normed))
        # Train net2 on a random division (the co-divide itself is the pass timed above).
        rng = np.random.RandomState(0)
        for k in (1, 2):
            trainer.state["division"][f"prob{k}"].assign(rng.rand(len(losses)).astype(np.float32))
        phase = trainer.method.phase(2, trainer.state, fresh=False)
    else:
        phase = trainer.method.phase(0, trainer.state, fresh=True)
    reference = None
    if FLAGS.torch_reference and device == "CPU":
        reference = reference_caller(entry, precision)
    spc = FLAGS.steps_per_call
    timed = compare(step_caller(trainer, phase, spc), reference,
                    calls=max(1, FLAGS.steps // spc), warmup_calls=max(1, FLAGS.warmup // spc),
                    max_rounds=FLAGS.max_rounds)
    seconds = timed["step_seconds"] / spc
    out["train_images_per_s"] = images / seconds
    out["step_seconds"] = seconds
    out["clean_steps"] = timed["clean_steps"]
    out["timed_steps"] = timed["timed_steps"]
    if reference is not None:
        out["reference_images_per_s"] = images / timed["reference_step_seconds"]
        out["reference_clean_steps"] = timed["reference_clean_steps"]
        if "ratio" in timed:
            out["ratio"] = timed["ratio"]
        else:
            logging.warning("%s %s: no ratio, the machine was not idle: %s", entry, precision,
                            timed["load"])
    out["pipeline_images_per_s"] = time_pipeline(trainer, phase, FLAGS.pipeline_steps, images)
    out["gflops_per_s"] = step_flops(entry, trainer) / seconds / 1e9
    out["matmul_gflops_per_s"] = ceiling
    out["matmul_fraction"] = out["gflops_per_s"] / ceiling
    physical = (peak.peak_gflops(precision, cores(), clock_mhz, info=cpu)
                if device == "CPU" and cpu else None)
    if physical:
        out["clock_mhz"] = clock_mhz
        out["peak_gflops_per_s"] = physical
        out["peak_fraction"] = out["gflops_per_s"] / physical
    out.update(extra)
    return out


def time_gmm(losses, n=50000, reps=5):
    """Median seconds of our GMM fit and of scikit-learn's on ``n`` losses.

    The losses are those of the loss pass, resampled to ``n`` when the pass was shorter.
    """
    from sklearn.mixture import GaussianMixture
    from mixmatch_tf.ops import gmm
    if len(losses) != n:
        losses = np.random.RandomState(0).choice(losses, n)
    losses = losses.astype(np.float32)
    gmm.clean_probability(losses)  # trace

    def sklearn_fit():
        x = losses.reshape(-1, 1).astype(np.float64)
        GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4).fit(x).predict_proba(x)

    times = {"gmm_seconds": [], "sklearn_gmm_seconds": []}
    for _ in range(reps):
        for key, fit in (("gmm_seconds", lambda: gmm.clean_probability(losses)),
                         ("sklearn_gmm_seconds", sklearn_fit)):
            t = time.perf_counter()
            fit()
            times[key].append(time.perf_counter() - t)
    return dict({k: statistics.median(v) for k, v in times.items()}, gmm_losses=n)


def main(argv):
    del argv
    import tensorflow as tf
    from mixmatch_tf.training import precision as precision_lib
    if FLAGS.max_cpu_isa:  # before the first kernel is chosen (peak.limit_isa)
        peak.limit_isa(FLAGS.max_cpu_isa)
    isa = peak.max_isa()
    cpu = peak.cpu_info()
    cpu = peak.capped(cpu, isa) if cpu else None
    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    unknown = set(FLAGS.method) - set(SETUPS)
    if unknown:
        raise app.UsageError(f"Invalid flag --method: {sorted(unknown)}; valid: {', '.join(SETUPS)}")
    valid = (precision_lib.AUTO,) + precision_lib.PRECISIONS
    unknown = set(FLAGS.precision) - set(valid)
    if unknown:
        raise app.UsageError(f"Invalid flag --precision: {sorted(unknown)}; valid: {', '.join(valid)}")
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    precisions, capability = [], precision_lib.gpu_capability()
    for precision in FLAGS.precision:  # auto by the instruction sets left under the cap
        precision = precision_lib.resolve(
            precision, flags=frozenset(cpu["flags"]) if cpu else None, capability=capability)
        if precision not in precisions:
            precisions.append(precision)
    if (isa != "all" and "mixed_bfloat16" in precisions and cpu
            and "avx512f" not in cpu["flags"]):
        # TensorFlow still sends bf16 work to oneDNN, which cannot build it under the cap
        # and aborts the process (a CPU that lacks AVX-512 emulates it, slowly).
        raise app.UsageError(f"--precision=mixed_bfloat16 cannot run under --max_cpu_isa={isa}: "
                             "TensorFlow's bf16 kernels need AVX-512 there; valid: float32, "
                             "auto, or a cap of avx512_core or above")
    datasets = {}  # IMAGENET's (image size, classes), or None for the CIFAR-shaped arrays
    with tempfile.TemporaryDirectory(prefix="mixmatch_tf_bench_jpeg_") as folder:
        def data_for(entry):
            key = IMAGENET.get(entry)
            if key not in datasets:
                datasets[key] = (cifar_like(max(FLAGS.loss_pass_images, 5000)) if key is None
                                 else jpeg_folder_data(tempfile.mkdtemp(dir=folder), *key))
            return datasets[key]
        # The clock for the physical peak: boost clocks exceed the reported one, and a
        # float32 matmul shows how far (peak.effective_mhz).
        clock_mhz = (peak.effective_mhz(matmul_gflops("float32"), cores(), info=cpu)
                     if cpu else None)
        for precision in precisions:
            ceiling = matmul_gflops(precision)
            for entry in FLAGS.method:
                result = benchmark(entry, precision, data_for(entry), ceiling, device,
                                   clock_mhz, cpu)
                fields = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in result.items()]
                print(" ".join(fields + [f"device={device}", f"jit={int(FLAGS.jit_compile)}",
                                         f"steps_per_call={FLAGS.steps_per_call}",
                                         f"threads={tf_threads()}", f"onednn={onednn()}",
                                         f"max_cpu_isa={isa}"]),
                      flush=True)


def run():
    """The console entry point ``mixmatch-benchmark``."""
    cli.launch(main, define_flags, __doc__)


if __name__ == "__main__":
    run()
