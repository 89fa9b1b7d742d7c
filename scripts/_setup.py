"""Makes the repository's ``flags`` package importable from scripts/ and quiets TF."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as mixmatch_tf/__init__.py says why


def one_line_errors(main):
    """Wraps an absl ``main``: a data or configuration error is one line, not a traceback.

    Errors about the user's input (ValueError -- every loader's and config check's
    error is one -- and missing or unreadable files) are printed to stderr as
    ``error: <message>`` (the message names the file or flag, the value and what
    is valid) and the script exits with status 1. ``--verbosity=1`` (``-v 1``)
    shows the traceback instead, for a bug report.
    """
    import functools

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except (ValueError, OSError) as e:
            from absl import logging
            if logging.level_debug():
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
    return wrapped
