"""`--backend`: re-run the command under another Keras backend.

Keras fixes its backend when it is first imported, and `import keras_robust`
imports Keras, so by the time the arguments are parsed the backend is set.
The only robust way to honour `--backend` is a fresh interpreter with
`KERAS_BACKEND` set: the same command, run as `python -m keras_robust.cli`.
"""

import os
import subprocess
import sys

import keras

from keras_robust.cli import errors

# Set in the re-run's environment: if Keras still starts on another backend
# there, say so instead of re-running forever.
SWITCHED_ENV = "KERAS_ROBUST_CLI_SWITCHED_TO"


def running_backend():
    """The backend Keras runs in this process."""
    return keras.backend.backend()


def rerun(backend, argv=None):
    """Runs the command again with `KERAS_BACKEND=backend`.

    Args:
        backend: "tensorflow", "jax" or "torch".
        argv: the arguments of `main(argv)`; None means `sys.argv[1:]`, in
            which case this process is replaced (`os.execve`) and the call
            does not return. With explicit arguments (`main([...])` from
            Python), the command runs in a child process and its exit status
            is returned, so the caller's interpreter survives.

    Returns:
        The exit status of the re-run (only when `argv` is given).
    """
    running = running_backend()
    if os.environ.get(SWITCHED_ENV) == backend:
        return errors.report(
            f"asked for the {backend} backend, but Keras still started on "
            f"{running} with KERAS_BACKEND={backend}; is {backend} installed?",
            errors.RUNTIME_STATUS,
        )
    print(
        f"{errors.PROG}: Keras runs on {running}; re-running with "
        f"KERAS_BACKEND={backend}",
        file=sys.stderr,
        flush=True,
    )
    environment = dict(os.environ, KERAS_BACKEND=backend, **{SWITCHED_ENV: backend})
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "keras_robust.cli", *arguments]
    sys.stdout.flush()
    if argv is None:
        os.execve(sys.executable, command, environment)
    return subprocess.run(command, env=environment, check=False).returncode
