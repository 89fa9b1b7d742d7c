"""What a run tells its user as it trains: its plan, its progress, its expected wall time.

``fit(verbose=...)`` as in Keras: 1 draws a ``keras.utils.Progbar`` (steps, rate,
ETA, the main losses and the last test error) in place, 2 prints a line every
``log_every_seconds``, 0 is silent; ``"auto"`` is 1 on a terminal or in a
notebook, 2 otherwise (logs, pipes). The command line and the demo use this too.
"""
import sys
import time

import keras
from absl import logging

VERBOSE = ("auto", 0, 1, 2)


def resolve_verbose(verbose):
    """``verbose`` as 0, 1 or 2 (``"auto"``: 1 where a bar can be redrawn, else 2)."""
    if verbose not in VERBOSE:
        raise ValueError(f"verbose must be one of {', '.join(map(repr, VERBOSE))}, got "
                         f"{verbose!r}")
    if verbose != "auto":
        return verbose
    interactive = sys.stdout.isatty() or "ipykernel" in sys.modules
    return 1 if interactive else 2


def shown_metrics(metrics):
    """The metrics a progress display shows: the loss and its parts (``loss_*``)."""
    return {k: v for k, v in sorted(metrics.items()) if k == "loss" or k.startswith("loss_")}


def duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class Progress:
    """Steps per second over the last calls, and the display of a run's progress.

    Args:
      total: the run's total steps, or None if unknown.
      start: the step the run (re)starts at.
      verbose: 0, 1 or 2 (``resolve_verbose``).
      on_progress: optional ``fn(info)`` called after every compiled call
        (``report``) with ``step``, ``total``, ``rate`` (steps/s), ``eta_seconds``
        (None if unknown) and the progress ``line``.
      log_every_seconds: a line (verbose 2) at most this often.
      window: calls the rate is averaged over.
    """

    def __init__(self, total, start=0, verbose=2, on_progress=None, log_every_seconds=5.0,
                 window=20):
        self.total, self.start = total, start
        self.verbose = verbose
        self._window = []
        self._size = window
        self._on_progress = on_progress
        self._log_every = log_every_seconds
        self._last_line = None
        self._bar = None
        self._calls = 0
        self._test_error = None

    def report(self, steps, seconds, step, phase, phase_step, metrics):
        """Counts a call of ``steps`` steps, then tells ``on_progress`` and the user."""
        self._calls += 1
        if self._calls == 2:  # the first call traced the step: its time says little
            self._window = []
        self.add(steps, seconds)
        line = self.line(step, phase.name, phase_step, phase.steps, metrics)
        if self._on_progress is not None:
            self._on_progress({"step": step, "total": self.total, "rate": self.rate,
                               "eta_seconds": self.eta_seconds(step), "line": line})
        if self._calls == 3:  # two calls after the traced one: a rate to go by
            self.expected(step)
        if self.verbose == 1 and self.total:
            values = dict(shown_metrics(metrics))
            if self._test_error is not None:
                values["test_error"] = self._test_error
            if self._bar is None:
                self._bar = keras.utils.Progbar(max(1, self.total - self.start),
                                                stateful_metrics=set(values) | {"test_error"})
            self._bar.update(step - self.start, values=list(values.items()))
        elif self.verbose:
            if self._last_line is None or time.time() - self._last_line >= self._log_every:
                self._last_line = time.time()
                print(line, flush=True)
        logging.debug(line)

    def retotal(self, total):
        """A new estimate of the run's total steps (the bar's target follows it)."""
        self.total = total
        if self._bar is not None:
            self._bar.target = max(1, total - self.start)

    def evaluated(self, test_error):
        """The test error of the last evaluation, shown from the next report on."""
        self._test_error = test_error

    def expected(self, step):
        """Says, once the rate is known, how long the rest of the run should take."""
        eta = self.eta_seconds(step)
        if eta is None:
            return
        text = (f"expected: {duration(eta)} for the {self.total - step} steps left at "
                f"{self.rate:.3g} steps/s (evaluations come on top)")
        logging.info(text)
        if self.verbose:
            print(text, flush=True)

    def add(self, steps, seconds):
        self._window = (self._window + [(steps, seconds)])[-self._size:]

    @property
    def rate(self):
        steps = sum(n for n, _ in self._window)
        secs = sum(t for _, t in self._window)
        return steps / secs if secs > 0 else float("nan")

    def eta_seconds(self, step):
        rate = self.rate
        if not self.total or not rate == rate or rate <= 0:
            return None
        return max(0, self.total - step) / rate

    def line(self, step, phase_name, phase_step, phase_steps, metrics):
        eta = self.eta_seconds(step)
        eta = "" if eta is None else f" | ETA {int(eta // 60)}:{int(eta % 60):02d}"
        of = f"/{self.total}" if self.total else ""
        shown = " ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        test = "" if self._test_error is None else f" | test error {self._test_error:.2f}%"
        return (f"step {step}{of} [{phase_name} {phase_step}/{phase_steps}] | {shown} "
                f"| {self.rate:.1f} steps/s{eta}{test}")


def plan(method, data, config, context, run, networks, model_given, steps, num_replicas,
         start=0):
    """One line: what a run is about to do (method, data, counts, network, length,
    precision), said before training so that a run too long for its machine is seen
    before it starts, not days later."""
    weights = sum(int(w.shape.num_elements()) for w in networks[0].trainable_weights)
    labeled = (len(context.labeled_indices) if context.labeled_indices is not None
               else data.num_train)
    pool = ("" if context.unlabeled_indices is None
            else f" + {len(context.unlabeled_indices):,} unlabeled")
    shape = "x".join(str(d) for d in data.image_shape)
    network = ("your model" if model_given else config.model) + f" ({weights:,} weights"
    network += f", {len(networks)} networks)" if len(networks) > 1 else ")"
    batch = getattr(config, "batch_size", None)
    epochs = ""
    if batch:
        passes = steps * batch / max(1, labeled)
        epochs = f", ~{passes:,.0f}" if passes >= 100 else f", ~{passes:.3g}"
        epochs += " epochs of the labeled data"
    resume = f", resuming at step {start:,}" if start else ""
    return (f"plan: {method} on {data.name}: {labeled:,} labeled{pool} examples of {shape}, "
            f"{data.num_classes} classes; {network}; {steps:,} steps of batch {batch}{epochs}"
            f"; {run.precision}, {num_replicas} replica(s){resume}")
