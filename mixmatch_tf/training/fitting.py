"""How a Trainer trains: phases to the end, evaluations, checkpoints, the reports.

``Fitting`` is mixed into ``trainer.Trainer`` (as Keras mixes its TensorFlow
trainer into ``Model``): the Trainer builds the run (the folder, the method, its
state, the passes and the phase loop), this runs it. It reads only what every
Trainer has: ``method``, ``state``, ``run``, ``run_dir``, ``records``, ``loop``,
``counters``, ``guard``, ``manager``, ``truth`` and the passes.
"""
import time

from absl import logging

from mixmatch_tf.training.label_issues import label_issue_report
from mixmatch_tf.training.loop import call_size, phase_iterator
from mixmatch_tf.training.progress import Progress, plan, resolve_verbose
from mixmatch_tf.training.records import run_record


class Fitting:
    """``fit`` and what it drives; see the module docstring."""

    def fit(self, on_progress=None, verbose="auto"):
        """Trains to the end (or resumes and finishes) and writes metrics.json.

        Says its plan first (``progress.plan``), then its progress as Keras' ``fit``
        does (``progress.Progress``).

        Args:
          on_progress: optional ``fn(info)`` called after every compiled call
            (``progress.Progress`` lists what ``info`` holds).
          verbose: 1 a progress bar, 2 a line every ``log_every_seconds``, 0
            silent; ``"auto"``: 1 on a terminal or in a notebook, else 2.

        Returns:
          The metrics; with ``stop_at_step`` reached first, only
          ``{"steps", "complete": False}`` after saving a checkpoint.
        """
        if self.read_only:
            raise RuntimeError(f"{self.run.model_dir} was opened read-only (load_run)")
        if self.run_dir.writer:
            self.run_dir.lock.acquire()
        self._started, self._base_elapsed = time.time(), float(self.counters.elapsed.numpy())
        verbose = resolve_verbose(verbose)
        try:
            return self._fit(on_progress, verbose)
        finally:
            self.run_dir.release()

    def _fit(self, on_progress, verbose):
        total, start = self.method.total_steps(), int(self.step)
        line = plan(self.method_cls.name, self.data, self.config, self.context, self.run,
                    self.method.networks(self.state), self._model_given, total,
                    self.strategy.num_replicas_in_sync, start)
        logging.info(line)
        if verbose:
            print(line, flush=True)
        self.progress = progress = Progress(total, start, verbose, on_progress,
                                            self.run.log_every_seconds)
        stop_at, finished = self.run.stop_at_step, False
        while stop_at is None or int(self.step) < stop_at or finished:
            index, done = int(self.counters.phase_index), int(self.counters.phase_step)
            phase = self.method.phase(index, self.state, fresh=(done == 0),
                                      start_step=int(self.step) - done)
            if phase is None:
                if not self.records.evaluated_at(int(self.step)):
                    self._record_eval("final")
                self._save("final")
                metrics = dict(self.write_metrics(), complete=True)
                issues = self._report_labels()
                if issues is not None:  # the method judged its labels: which look wrong
                    metrics["label_issues"] = issues
                    if verbose:
                        print(issues["line"], flush=True)
                if self.run.export_dir:
                    metrics["export_path"] = self.export(self.run.export_dir)
                return metrics
            if phase.steps_after is not None:
                progress.retotal(int(self.step) - done + phase.steps + phase.steps_after)
            if done < phase.steps and not self._run_phase(phase, index, done, progress):
                break
            finished = phase.last  # a stop_at_step at the run's last step ends the run
            self.counters.phase_index.assign_add(1)
            self.counters.phase_step.assign(0)
            if done < phase.steps:
                if phase.evaluate_at_end and not self.records.evaluated_at(int(self.step)):
                    self._record_eval(phase.name)
                self._save(phase.name)
        self._save("stop")
        return {"steps": int(self.step), "complete": False}

    def _run_phase(self, phase, index, done, progress):
        """Runs ``phase`` from its step ``done``; False when stopped at ``stop_at_step``."""
        run, eval_every = self.run, self.method.eval_every()
        iterator = phase_iterator(self.strategy, self.source, phase, run.seed,
                                  index if phase.salt is None else phase.salt, done)
        self.records.phase_summaries(int(self.step), phase.name, phase.summaries)
        if phase.labels_judged and done == 0:
            self.records.phase_summaries(int(self.step), phase.name,
                                         self.method.judge(self.state, self.truth))
            chosen = self.method.chosen_settings(self.state)
            if chosen and self.run_dir.record_chosen(chosen) and self.progress.verbose:
                print("settings chosen from the data: " + ", ".join(
                    f"{k}={v}" for k, v in chosen.items() if k != "estimates")
                    + f" (estimates {chosen.get('estimates', {})}; run.json 'chosen')",
                    flush=True)
            issues = self._report_labels()
            if issues is not None:
                logging.info("%s: %s", phase.name, issues["line"])
        while int(self.counters.phase_step) < phase.steps:
            left = phase.steps - int(self.counters.phase_step)
            n = call_size(int(self.step), left, run, eval_every)
            if n == 0:
                return False  # at stop_at_step
            metrics, seconds = self.loop.run(phase, iterator, n)
            step = int(self.step)
            self.records.add_train_metrics(step, metrics, int(self.counters.unreadable.numpy()))
            progress.report(n, seconds, step, phase, int(self.counters.phase_step), metrics)
            if eval_every and step % eval_every == 0:
                self._record_eval(phase.name)
            if step % run.checkpoint_every == 0:
                self._save(phase.name)
        return True

    def _report_labels(self):
        """The label-issue report of the method's evidence now (None without any), in
        the run folder and TensorBoard (``label_issues``)."""
        return label_issue_report(self, write=self.run_dir.writer, tensorboard=True)

    def _record_eval(self, phase_name):
        record = self.evaluate(details=True)
        self.records.add_eval(int(self.step), phase_name, record)
        if getattr(self, "progress", None) is not None:
            self.progress.evaluated(record["test_error"])
        return record["test_error"]

    def _save(self, phase_name):
        """Saves a checkpoint, unless a weight went NaN/Inf (the last good one is kept)."""
        self.guard.check(int(self.step), phase_name, self.run_dir.last_good())
        self.counters.elapsed.assign(self._base_elapsed + time.time() - self._started)
        self.records.before_checkpoint()
        return self.run_dir.save_checkpoint(self.manager, int(self.step))

    def write_metrics(self):
        out = run_record(self.method_cls.name, self.data, self.run, self.config, int(self.step),
                         float(self.counters.elapsed.numpy()), self.strategy.num_replicas_in_sync,
                         int(self.counters.unreadable.numpy()))
        chosen = self.method.chosen_settings(self.state)
        if chosen:
            out["chosen_settings"] = chosen
        out.update(self.method.train_errors(self.state, self.truth))
        out.update(self.method.diagnostics(self.state, self.truth))
        return self.records.write_metrics(out)
