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

    Errors about the user's input or machine (``_user_error``: ValueError -- every
    loader's and config check's error is one --, missing or unreadable files, a run
    folder that cannot be used, a diverging loss, memory or disk running out) are
    printed to stderr as ``error: <message>`` (the message names the file or flag,
    the value and what is valid) and the script exits with status 1; any other
    error is a bug and keeps its traceback. ``--verbosity=1`` (``-v 1``) shows the
    traceback of every error, for a bug report.
    """
    import functools

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except Exception as e:  # noqa: BLE001 -- sorted below: the user's, or a bug
            from absl import logging
            message = _user_error(e)
            if message is None or logging.level_debug():
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(1)
    return wrapped


def _user_error(error):
    """The one line of an error the user's input or machine caused, else None (a bug:
    its traceback is shown). Besides ValueError and OSError: a run folder that cannot
    be used, a loss that went NaN (the settings diverge), memory or disk running out,
    a folder that may not be written."""
    import tensorflow as tf
    from mixmatch_tf.training import RunFolderError
    if isinstance(error, tf.errors.ResourceExhaustedError):
        return f"out of memory or disk space: {_first_line(error.message)}"
    if isinstance(error, tf.errors.PermissionDeniedError):
        return f"permission denied: {_first_line(error.message)}"
    if isinstance(error, MemoryError):
        return f"out of memory ({_first_line(str(error)) or 'MemoryError'})"
    if isinstance(error, (ValueError, OSError, RunFolderError, FloatingPointError)):
        return str(error)  # written for the user (a how-to may follow on more lines)
    return None


def _first_line(text):
    """The first line of an error, without TensorFlow's graph-function and op tags."""
    import re
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]", "", str(text))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""
