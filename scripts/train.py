"""``mixmatch-train`` from a checkout (``--help`` lists its flags).

The program is mixmatch_tf/cli/train.py.
"""
from mixmatch_tf.cli.train import run

if __name__ == "__main__":
    run()
