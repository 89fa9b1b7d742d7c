"""``mixmatch-export`` from a checkout (``--help`` lists its flags).

The program is mixmatch_tf/cli/export.py.
"""
from mixmatch_tf.cli.export import run

if __name__ == "__main__":
    run()
