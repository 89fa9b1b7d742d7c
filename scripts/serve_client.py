"""``mixmatch-serve-client`` from a checkout (``--help`` lists its flags).

The program is mixmatch_tf/cli/serve_client.py.
"""
from mixmatch_tf.cli.serve_client import run

if __name__ == "__main__":
    run()
