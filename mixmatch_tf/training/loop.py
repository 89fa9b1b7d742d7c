"""The phase loop: a phase's per-replica step, compiled several steps per call.

``PhaseLoop.compiled(phase)`` traces ``phase.step_fn`` under ``strategy.run``
inside one ``tf.function`` that runs up to ``n`` steps and stops early at a
non-finite loss. A compiled loop is kept per kind of phase (its name): a method
builds each kind's step function once, and what changes from one phase to the
next reaches the step as tensors -- ``Phase.values`` (passed as an argument, so a
new value is never a stale constant of an old trace and never a retrace) or
tf.Variables of the method's state. A phase that arrives with another step
function under a name already compiled is refused, not run with the old trace.
"""
import time

import tensorflow as tf

from mixmatch_tf.data.pipeline import train_dataset

class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or Inf; the run stopped without saving."""


class PhaseLoop:
    """Compiles and runs phases' train steps under a strategy.

    Args:
      strategy: the tf.distribute strategy.
      state: the method's state (what ``step_fn`` receives).
      step, phase_step: host int64 variables counting global and in-phase steps.
      jit_compile: compile the per-replica step with XLA.
      unreadable: optional host int64 variable; batches of streamed data carry, per
        stream, ``unreadable`` (the rows whose file could not be read and took
        another example of the batch), summed over replicas into it.
      last_good: optional ``fn() -> str`` naming the last good checkpoint, for the
        error raised at a non-finite loss.
    """

    def __init__(self, strategy, state, step, phase_step, jit_compile=False, unreadable=None,
                 last_good=None):
        self.strategy = strategy
        self.last_good = last_good
        self.state = state
        self.step = step
        self.phase_step = phase_step
        self.jit_compile = jit_compile
        self.unreadable = unreadable
        self._loops = {}

    def compiled(self, phase):
        """``loop(iterator, n, values) -> (mean metrics, finite)`` of ``phase`` (one per
        phase name)."""
        step_fn, loop = self._loops.get(phase.name, (None, None))
        if loop is None:
            loop = self._compile(phase)
            self._loops[phase.name] = (phase.step_fn, loop)
        elif step_fn != phase.step_fn:  # bound methods compare equal; a new closure does not
            raise ValueError(f"phase {phase.name!r} comes with another step function than the "
                             "one it was compiled with: build a step function once per kind of "
                             "phase and pass what changes as Phase.values or state variables")
        return loop

    def _compile(self, phase):
        strategy, state, step_fn, name = self.strategy, self.state, phase.step_fn, phase.name
        jit, with_values = self.jit_compile, bool(phase.values)

        def replica_fn(batch, step, values):
            out = step_fn(state, batch, step, values) if with_values else step_fn(
                state, batch, step)
            if "loss" not in out:
                raise ValueError(f"the train step of phase {name!r} must return 'loss'")
            return {k: tf.cast(v, tf.float32) for k, v in out.items()}
        if jit:
            replica_fn = tf.function(replica_fn, jit_compile=True)

        def unreadable(batch):
            counts = [tf.cast(b["unreadable"], tf.int64) for b in batch.values()
                      if isinstance(b, dict) and "unreadable" in b]
            return tf.add_n(counts) if counts else tf.constant(0, tf.int64)

        # A function of its own: the loop calls it before and inside the while loop,
        # and it is traced once instead of twice (tracing is most of a short run's time).
        @tf.function
        def one_step(iterator, values):
            batch = next(iterator)
            out = strategy.run(replica_fn, args=(batch, self.step.read_value(), values))
            out = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                   for k, v in out.items()}
            if self.unreadable is not None:
                self.unreadable.assign_add(strategy.reduce(
                    tf.distribute.ReduceOp.SUM, strategy.run(unreadable, args=(batch,)),
                    axis=None))
            self.step.assign_add(1)
            self.phase_step.assign_add(1)
            return out

        @tf.function
        def loop(iterator, n, values):
            sums = one_step(iterator, values)
            finite = tf.math.is_finite(sums["loss"])
            count = tf.constant(1, tf.int32)
            while count < n and finite:
                m = one_step(iterator, values)
                finite = tf.math.is_finite(m["loss"])
                sums = {k: sums[k] + m[k] for k in sums}
                count += 1
            return {k: v / tf.cast(count, tf.float32) for k, v in sums.items()}, finite
        return loop

    def run(self, phase, iterator, n):
        """Runs ``n`` steps of ``phase``; returns (mean metrics as floats, seconds).

        Raises:
          NonFiniteLossError: the loss became NaN or Inf (the step and the last good
            checkpoint are named; nothing is saved).
        """
        t0 = time.time()
        metrics, finite = self.compiled(phase)(iterator, tf.constant(n, tf.int32),
                                               phase_values(phase))
        if not bool(finite):
            last = f". Last good checkpoint: {self.last_good()}" if self.last_good else ""
            raise NonFiniteLossError(f"loss became {float(metrics['loss'])} at step "
                                     f"{int(self.step)} (phase {phase.name!r}); stopped "
                                     f"without saving{last}")
        return {k: float(v) for k, v in metrics.items()}, time.time() - t0


def phase_values(phase):
    """``phase.values`` as the compiled loop takes them: float32 scalar tensors."""
    return {k: tf.constant(v, tf.float32) for k, v in phase.values.items()}


def phase_iterator(strategy, source, phase, seed, salt, start_step):
    """The distributed iterator of ``phase``'s batches from its step ``start_step``
    (the stream is a function of (seed, salt, step))."""
    return iter(strategy.distribute_datasets_from_function(
        lambda ctx: train_dataset(source, phase.streams, seed=seed, salt=salt,
                                  start_step=start_step, transform=phase.transform,
                                  input_context=ctx)))


def call_size(step, left_in_phase, run, eval_every):
    """Steps of the next compiled call: up to ``run.steps_per_call``, ending at the
    phase's end and at the next checkpoint, evaluation and ``run.stop_at_step``
    (0 once that is reached)."""
    limits = [left_in_phase, run.steps_per_call,
              run.checkpoint_every - step % run.checkpoint_every]
    if run.stop_at_step is not None:
        limits.append(max(0, run.stop_at_step - step))
    if eval_every:
        limits.append(eval_every - step % eval_every)
    return min(limits)


class StateGuard:
    """Whether every floating variable of a state is finite (checked before saving)."""

    def __init__(self, variables):
        self._floats = [v for v in variables if tf.as_dtype(v.dtype).is_floating]

    def finite(self):
        # Eager, once per checkpoint: a tf.function here would be traced anew by every
        # Trainer of a process (K-fold runs), and TensorFlow warns of retracing.
        return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self._floats)

    def check(self, step, phase_name, last_good):
        """Raises ``NonFiniteLossError`` (naming ``last_good``) unless all is finite."""
        if not self.finite():
            raise NonFiniteLossError(
                f"a weight became NaN or Inf at step {step} (phase {phase_name!r}); "
                f"stopped without saving. Last good checkpoint: {last_good}")
