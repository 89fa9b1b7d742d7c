"""Runs a suite's training runs as ``mixmatch-train`` processes, several at a time.

A run whose folder already holds ``metrics.json`` is skipped; a run that was
interrupted resumes from its checkpoint (training does that by itself), so a
suite stopped at any point and started again loses nothing. With several
parallel jobs each process is limited to one TensorFlow thread per core share.

Every run trains in float32 unless ``extra_args`` say otherwise: ``--precision=auto``
picks mixed_bfloat16 on CPUs with bf16 instructions, and a table must come out the
same on every machine (GPU suites pass ``--precision=mixed_float16``).
"""
import os
import subprocess
import sys
import time

import mixmatch_tf.flags as flags_package
from mixmatch_tf.training.folder import read_json

# The folder holding flags/presets/: the runs start there, so that the suites' and the
# presets' own ``--flagfile=flags/presets/...`` paths resolve (the repository in a
# checkout, the installed package's folder otherwise).
PRESETS_BASE = os.path.dirname(os.path.dirname(os.path.abspath(flags_package.__file__)))
# Seconds an interrupted suite waits for each run to stop before killing it.
STOP_SECONDS = 60
# First on every command line, so a later --precision (a preset's, --train_flags) wins.
SUITE_PRECISION = "--precision=float32"


def run_dir(output_dir, spec):
    return os.path.join(output_dir, "runs", spec.run_id)


def is_done(output_dir, spec):
    return os.path.exists(os.path.join(run_dir(output_dir, spec), "metrics.json"))


def _environment(threads):
    # PYTHONSAFEPATH: ``python -m`` leaves the start folder (PRESETS_BASE, the installed
    # package's own folder outside a checkout) off sys.path, so that its sub-packages
    # (``data``, ``models``) cannot shadow top-level modules of the same name.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", PYTHONSAFEPATH="1")
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads))
    return env


def _format_seconds(s):
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """One line per finished run: count, percent, elapsed and ETA over the whole suite."""

    def __init__(self, total, done, stream=sys.stdout):
        self.total, self.done, self.stream = total, done, stream
        self.started, self.finished_here = time.time(), 0

    def update(self, message):
        self.done += 1
        self.finished_here += 1
        elapsed = time.time() - self.started
        rate = elapsed / self.finished_here
        eta = rate * (self.total - self.done)
        width = 30
        filled = int(width * self.done / max(1, self.total))
        bar = "#" * filled + "-" * (width - filled)
        print(f"[{bar}] {self.done}/{self.total} {100 * self.done / max(1, self.total):3.0f}% "
              f"| {_format_seconds(elapsed)} elapsed, ETA {_format_seconds(eta)} | {message}",
              file=self.stream, flush=True)


def run_suite(specs, output_dir, jobs=1, data_dir=None, python=sys.executable, stream=sys.stdout,
              extra_args=()):
    """Runs every spec not yet finished; returns the list of (spec, returncode) that failed.

    ``extra_args``: mixmatch-train flags appended to every run's (they win over a preset's
    and over the suites' ``--precision=float32``: e.g.
    ``--dataset=folder:/data/imagenet --precision=mixed_float16``).
    """
    output_dir = os.path.abspath(output_dir)  # the runs start in PRESETS_BASE
    if data_dir:
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
    os.makedirs(os.path.join(output_dir, "runs"), exist_ok=True)
    todo = [s for s in specs if not is_done(output_dir, s)]
    progress = Progress(len(specs), len(specs) - len(todo), stream)
    if not todo:
        print(f"all {len(specs)} runs already finished", file=stream)
        return []
    cores = os.cpu_count() or 1
    threads = max(1, cores // jobs) if jobs > 1 else None
    running, failed = {}, []
    queue = list(todo)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                spec = queue.pop(0)
                folder = run_dir(output_dir, spec)
                os.makedirs(folder, exist_ok=True)
                log = open(os.path.join(folder, "log.txt"), "a")
                cmd = ([python, "-m", "mixmatch_tf.cli.train", SUITE_PRECISION]
                       + spec.argv(folder, data_dir) + list(extra_args))
                log.write(f"$ {' '.join(cmd)}\n")
                log.flush()
                proc = subprocess.Popen(cmd, cwd=PRESETS_BASE, stdout=log, stderr=subprocess.STDOUT,
                                        env=_environment(threads))
                running[proc] = (spec, log, time.time())
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                spec, log, t0 = running.pop(proc)
                log.close()
                if proc.returncode == 0:
                    m = read_json(os.path.join(run_dir(output_dir, spec), "metrics.json"), {})
                    progress.update(f"{spec.run_id}: test error {m.get('test_error', float('nan')):.2f}% "
                                    f"({time.time() - t0:.0f} s)")
                else:
                    failed.append((spec, proc.returncode))
                    progress.update(f"{spec.run_id}: FAILED (exit {proc.returncode}), see "
                                    f"{os.path.join(run_dir(output_dir, spec), 'log.txt')}")
    except KeyboardInterrupt:
        # Ctrl-C reaches the children with the terminal's process group; a SIGTERM to
        # this process (scripts/reproduce.py turns it into KeyboardInterrupt) does not:
        # pass it on, and wait, so no training process is left running orphaned.
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print("interrupted: finished runs are kept, unfinished ones resume next time",
              file=stream)
        raise
    return failed
