"""``mixmatch-benchmark`` from a checkout (``--help`` lists its flags).

The program is mixmatch_tf/cli/benchmark.py.
"""
from mixmatch_tf.cli.benchmark import run

if __name__ == "__main__":
    run()
