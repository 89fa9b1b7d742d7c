"""``mixmatch-reproduce`` from a checkout (``--help`` lists its flags).

The program is mixmatch_tf/cli/reproduce.py.
"""
from mixmatch_tf.cli.reproduce import run

if __name__ == "__main__":
    run()
