"""The command-line programs: ``mixmatch-train`` and the others, and ``scripts/*.py``.

Each program module has a ``run()`` (its console entry point; ``scripts/<name>.py``
calls the same) that hands its ``main`` and its flags to ``launch``, which starts
TensorFlow quietly (``start``): ``--help`` lists the program's own flags by
group, one line each (``--helpfull``: every flag, absl's and TensorFlow's too); an
error the user's input or machine caused is one line, not a traceback.

Only these entry points change process-wide state (environment variables read by
TensorFlow's C++ runtime, the logging handlers, stderr while TensorFlow loads): they
are the program. The library (everything outside ``cli``) never does.
"""
import contextlib
import functools
import os
import re
import sys
import tempfile

# Start-up lines TensorFlow's C++ runtime writes to stderr before its logging is
# initialised (oneDNN notice, "Could not find cuda drivers", "failed call to cuInit",
# once per shared library that logs): TF_CPP_MIN_LOG_LEVEL does not silence them in
# TF 2.21, so stderr is held in a file while TensorFlow loads and finds its devices,
# and shown if loading fails.
_VERBOSITY_FLAGS = ("--verbosity", "--v", "-v")


def verbose(argv):
    """Whether ``argv`` asks for absl's INFO lines or more (``-v 0``, ``--verbosity=1``)."""
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in _VERBOSITY_FLAGS:
            if not eq:
                value = argv[i + 1] if i + 1 < len(argv) else ""
            try:
                return int(value) >= 0
            except ValueError:
                return False  # absl refuses the value with its own message
    return False


@contextlib.contextmanager
def _stderr_held():
    """File descriptor 2 goes to a temporary file; its text is replayed on an error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode("utf-8", "replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def start(argv=None):
    """Loads TensorFlow for a program: quietly unless ``argv`` asks for ``-v 0`` or more.

    Also sends every Python log line through absl's handler once: TensorFlow gives its
    logger a handler of its own when the root logger has none yet, and absl's handler
    on the root then printed each ``INFO:tensorflow`` line a second time.
    """
    argv = sys.argv if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import logging
    logging.use_absl_handler()
    if "tensorflow" in sys.modules or verbose(argv):
        import tensorflow  # noqa: F401
        return
    with _stderr_held():
        import tensorflow as tf
        tf.config.list_physical_devices()  # CUDA's probe logs here, not at import


def launch(main, define_flags, doc, help_groups=None, verbosity="warning"):
    """A program: TensorFlow started (``start``), its flags defined (``define_flags()``)
    and parsed, ``main`` run under ``absl.app.run`` with errors as one line.

    ``--help`` prints ``doc`` and ``help_groups(argv)`` (``[(title, [flag names])]``;
    default: one group of the flags ``define_flags`` defined). Absl's INFO lines are
    hidden by default (``-v 0`` shows them): what a user needs, the programs print.
    """
    from absl import app, flags, logging
    argv = sys.argv
    start(argv)
    before = set(flags.FLAGS)
    define_flags()
    own = [name for name in flags.FLAGS if name not in before]
    if any(a in ("--help", "-h", "-?", "--help=true", "--helpshort") for a in argv[1:]):
        from mixmatch_tf.cli.help import print_help
        try:
            print_help(doc, help_groups(argv) if help_groups else [("Flags", own)])
            sys.stdout.flush()
        except BrokenPipeError:  # `--help | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    logging.set_verbosity(verbosity)
    app.run(one_line_errors(main))


def one_line_errors(main):
    """Wraps an absl ``main``: a data or configuration error is one line, not a traceback.

    Errors about the user's input or machine (``user_error``: ValueError -- every
    loader's and config check's error is one --, missing or unreadable files, a run
    folder that cannot be used, a diverging loss, memory or disk running out) are
    printed to stderr as ``error: <message>`` (the message names the file or flag,
    the value and what is valid) and the program exits with status 1; any other
    error is a bug and keeps its traceback. ``--verbosity=1`` (``-v 1``) shows the
    traceback of every error, for a bug report.
    """

    @functools.wraps(main)
    def wrapped(argv):
        from absl import app
        try:
            return main(argv)
        except app.UsageError as e:  # a flag's value: absl would print the doc above it
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 -- sorted below: the user's, or a bug
            from absl import logging
            message = user_error(e)
            if message is None or logging.level_debug():
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(1)
    return wrapped


def user_error(error):
    """The one line of an error the user's input or machine caused, else None (a bug:
    its traceback is shown). Besides ValueError and OSError: a run folder that cannot
    be used, a loss that went NaN (the settings diverge), memory or disk running out,
    a folder that may not be written."""
    import tensorflow as tf
    from mixmatch_tf.training import RunFolderError
    if isinstance(error, tf.errors.ResourceExhaustedError):
        return f"out of memory or disk space: {first_line(error.message)}"
    if isinstance(error, tf.errors.PermissionDeniedError):
        return f"permission denied: {first_line(error.message)}"
    if isinstance(error, MemoryError):
        return f"out of memory ({first_line(str(error)) or 'MemoryError'})"
    if isinstance(error, (ValueError, OSError, RunFolderError, FloatingPointError)):
        return str(error)  # written for the user (a how-to may follow on more lines)
    return None


def first_line(text):
    """The first line of an error, without TensorFlow's graph-function and op tags."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]", "", str(text))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""
