"""``mixmatch-label-issues`` from a checkout (``--help`` lists its flags).

The program is mixmatch_tf/cli/label_issues.py.
"""
from mixmatch_tf.cli.label_issues import run

if __name__ == "__main__":
    run()
