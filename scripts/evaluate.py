"""``mixmatch-evaluate`` from a checkout (``--help`` lists its flags).

The program is mixmatch_tf/cli/evaluate.py.
"""
from mixmatch_tf.cli.evaluate import run

if __name__ == "__main__":
    run()
