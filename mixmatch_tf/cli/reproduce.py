r"""mixmatch-reproduce: runs a named suite of experiments; writes REPORT.md (tables, figures).

  mixmatch-reproduce --suite=digits_ssl --seeds=0,1,2 --output_dir=runs/digits_ssl

(``python scripts/reproduce.py`` is the same program.)
Runs go to OUTPUT_DIR/runs/<row>--<column>--seed<s>/ as ordinary train.py run
folders; finished ones are skipped, interrupted ones resume, so the same command
continues a suite that was stopped. Several runs go in parallel (--jobs, default
one per CPU core). The report gives mean +- sample std (number of seeds) per cell
and the paper's number beside ours where the paper has one.
"""
import os
import shlex
import signal
import sys

from absl import app, flags

from mixmatch_tf import cli
from mixmatch_tf.reproduce import SUITES, run_suite, write_report

def define_flags():
    flags.DEFINE_enum("suite", None, sorted(SUITES), "Suite to run.", required=True)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every run.")
    flags.DEFINE_string("output_dir", None, "Default: runs/reproduce/<suite>.")
    flags.DEFINE_integer("jobs", os.cpu_count() or 1, "Runs in parallel.")
    flags.DEFINE_string("data_dir", None, "TFDS folder for the CIFAR/SVHN/STL suites.")
    flags.DEFINE_string("train_flags", "", "train.py flags appended to every run of the suite, "
                        "after its own (they win): e.g. \"--dataset=folder:/data/imagenet "
                        "--precision=mixed_float16\" for imagenet_mixup on GPUs.")
    flags.DEFINE_bool("report_only", False, "Only (re)write the report from finished runs.")
    flags.DEFINE_list("only", [], "Run only the runs whose id (row--column--seedS, as in "
                      "OUTPUT_DIR/runs/) contains one of these substrings, e.g. "
                      "--only=dividemix--sym-50. The report still lists every cell.")


FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        raise app.UsageError(f"Invalid flag --seeds={','.join(FLAGS.seeds)}: must be integers "
                             "like 0,1,2") from None
    if not seeds:
        raise app.UsageError("Invalid flag --seeds=: give at least one seed, like 0,1,2")
    if FLAGS.jobs < 1:
        raise app.UsageError(f"Invalid flag --jobs={FLAGS.jobs}: must be >= 1")
    suite = SUITES[FLAGS.suite]
    output_dir = FLAGS.output_dir or os.path.join("runs", "reproduce", suite.name)
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = os.path.join(output_dir, f".write_test.{os.getpid()}")
        open(probe, "w").close()
        os.remove(probe)
    except OSError as e:
        raise app.UsageError(f"Invalid flag --output_dir={output_dir}: cannot write there "
                             f"({e.strerror or e}); give a writable folder") from None
    command = " ".join(["python scripts/reproduce.py"] + [shlex.quote(a) for a in sys.argv[1:]])
    if suite.experiment is not None:
        text = suite.experiment(output_dir, seeds, jobs=FLAGS.jobs)
        with open(os.path.join(output_dir, "REPORT.md"), "w", encoding="utf-8") as f:
            f.write(f"# {suite.title}\n\n{suite.description}\n\nCommand: `{command}`\n\n{text}")
        print(text)
        return
    specs = suite.make_runs(seeds)
    failed = []
    if not FLAGS.report_only:
        chosen = [s for s in specs if not FLAGS.only or any(o in s.run_id for o in FLAGS.only)]
        if not chosen:
            raise app.UsageError(f"Invalid flag --only={','.join(FLAGS.only)}: matches none of "
                                 f"the runs {', '.join(s.run_id for s in specs)}")
        print(f"suite {suite.name}: {len(chosen)} runs, {FLAGS.jobs} at a time, in {output_dir}",
              flush=True)
        failed = run_suite(chosen, output_dir, jobs=FLAGS.jobs, data_dir=FLAGS.data_dir,
                           extra_args=shlex.split(FLAGS.train_flags))
    text = write_report(suite, specs, output_dir, command)
    print(text)
    print(f"\nreport: {os.path.join(output_dir, 'REPORT.md')}")
    if failed:
        print(f"{len(failed)} runs failed: " + ", ".join(s.run_id for s, _ in failed))
        sys.exit(1)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run():
    """The console entry point ``mixmatch-reproduce``."""
    # SIGTERM (a scheduler, `kill`) stops the suite as Ctrl-C does: the running
    # training processes get it too and are waited for; a re-run continues them.
    signal.signal(signal.SIGTERM, _interrupt)
    cli.launch(main, define_flags, __doc__)


if __name__ == "__main__":
    run()
