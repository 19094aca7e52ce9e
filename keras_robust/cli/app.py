"""`main`: parse, switch the backend if asked, run the command, report errors."""

from keras_robust import backend
from keras_robust.cli import analyze
from keras_robust.cli import backend_switch
from keras_robust.cli import errors
from keras_robust.cli import evaluate
from keras_robust.cli import generate
from keras_robust.cli import train
from keras_robust.cli.parser import BACKENDS
from keras_robust.cli.parser import build_parser

COMMANDS = {
    "train": train.run,
    "evaluate": evaluate.run,
    "generate": generate.run,
    "analyze": analyze.run,
}


def main(argv=None):
    """Runs `keras-robust` with `argv` (default: the command line).

    Args:
        argv: the arguments after the program name, e.g.
            `["train", "--method", "weat", "--dataset", "digits"]`; None reads
            `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success, 2 for a bad command line or an
        argument that cannot be used (a data set that cannot be loaded, a
        model Keras cannot read), 1 for an error while running, 130 when
        interrupted. Errors are printed as one line on stderr, unless
        `--debug` is given, in which case they are raised.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, or a bad command line
        return exit_request.code
    running = backend_switch.running_backend()
    if args.backend is not None and args.backend != running:
        return backend_switch.rerun(args.backend, argv)
    if running not in BACKENDS:
        return errors.report(
            f"Keras runs on {running}, but keras-robust supports "
            f"{' and '.join(BACKENDS)}: pass --backend or set KERAS_BACKEND",
            errors.USAGE_STATUS,
        )
    # An application may set process-wide options a library must not: on
    # JAX, the random draws of every new shape compile 3-5x faster.
    backend.use_fast_compiling_random()
    try:
        return COMMANDS[args.command](args)
    except errors.UsageError as error:
        if args.debug:
            raise error.__cause__ or error from None
        return errors.report(str(error), errors.USAGE_STATUS)
    except errors.LIBRARY_ERRORS as error:
        if args.debug:
            raise
        return errors.report(errors.one_line(error), errors.RUNTIME_STATUS)
    except KeyboardInterrupt:
        return errors.report("interrupted", errors.INTERRUPTED_STATUS)
