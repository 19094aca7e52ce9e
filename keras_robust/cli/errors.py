"""How the CLI reports errors: one line on stderr and an exit status.

Exit statuses follow argparse: 2 for a bad command line (including
arguments that only turn out wrong once used: a data set that cannot be
loaded, a model file Keras cannot read), 1 for an error while running.
"""

import contextlib
import sys

PROG = "keras-robust"
USAGE_STATUS = 2
RUNTIME_STATUS = 1
INTERRUPTED_STATUS = 130

# The library's argument and data errors (ConnectionError, FileNotFoundError
# and PermissionError are OSErrors), and a missing optional dependency:
# shown as one line, not a traceback.
LIBRARY_ERRORS = (ValueError, TypeError, OSError, ImportError)


class UsageError(Exception):
    """An argument that looked valid but cannot be used (exit status 2)."""


def one_line(error):
    """The first line of an error message, with a hint when lines were cut."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    if isinstance(error, ConnectionError):
        # kr.datasets.load's offline error: the rest of it is a recipe.
        text += " Pass --data-dir with a prepared copy (--debug shows how to make one)."
    elif len(lines) > 1:
        text += " (--debug shows the full message)"
    return text


def report(message, status):
    """Prints `keras-robust: error: message` on stderr; returns `status`."""
    sys.stdout.flush()
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return status


@contextlib.contextmanager
def as_usage_errors():
    """Turns library errors raised inside the block into `UsageError`s.

    Wraps the part of a command that turns arguments into objects (data,
    model, optimizer): an error there means an argument cannot be used.
    """
    try:
        yield
    except UsageError:
        raise
    except LIBRARY_ERRORS as error:
        raise UsageError(one_line(error)) from error
