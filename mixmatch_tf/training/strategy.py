"""Choosing a tf.distribute strategy: TensorFlow's own engines only."""
import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multi_worker")


def split_cpu(num_devices):
    """Splits the host CPU into ``num_devices`` logical devices (for tests/demos).

    Must run before TensorFlow initialises its devices.
    """
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as e:
        raise RuntimeError(f"cannot split the CPU into {num_devices} devices after TensorFlow "
                           f"has initialised them ({e}); pass cpu_replicas before any TF work"
                           ) from None


def make_strategy(kind="auto", cpu_replicas=0):
    """Returns the strategy to train under.

    Args:
      kind: ``auto`` (MirroredStrategy over the visible GPUs, or over one CPU
        device when there is none), ``mirrored`` (the same, explicitly), or
        ``multi_worker`` (MultiWorkerMirroredStrategy configured by TF_CONFIG).
      cpu_replicas: when > 0 and no GPU is visible, split the CPU into this many
        logical devices and mirror over them (2 shows multi-replica training on
        a laptop; it does not make training faster).
    """
    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy {kind!r}; valid: {', '.join(STRATEGIES)}")
    gpus = tf.config.list_physical_devices("GPU")
    if cpu_replicas and not gpus:
        split_cpu(cpu_replicas)
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if gpus:
        return tf.distribute.MirroredStrategy()
    return cpu_strategy(max(1, cpu_replicas))


def cpu_strategy(num_replicas):
    """MirroredStrategy over the first ``num_replicas`` logical CPU devices.

    Reductions go through one device rather than collective ops: several such
    strategies can then live in one process (tests) without collective-key clashes.
    """
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(cpus) < num_replicas:
        raise ValueError(f"{num_replicas} CPU replicas asked for but only {len(cpus)} logical "
                         "CPU devices exist; split the CPU first (cpu_replicas)")
    return tf.distribute.MirroredStrategy(
        cpus[:num_replicas], cross_device_ops=tf.distribute.ReductionToOneDevice())


def is_chief(strategy):
    """True on the worker that writes checkpoints, summaries and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())
