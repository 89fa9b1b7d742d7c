"""The reproduction harness: named suites of runs, a parallel runner, reports."""
from mixmatch_tf.reproduce.report import write_report
from mixmatch_tf.reproduce.runner import run_suite
from mixmatch_tf.reproduce.suites import SUITES, RunSpec, Suite
