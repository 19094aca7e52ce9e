"""What the CLI prints: a settings header and where the outputs are."""

import os

from keras_robust.cli import backend_switch
from keras_robust.cli import errors


def print_settings(command, rows):
    """`keras-robust COMMAND on BACKEND` and one `name: value` line per row."""
    print(f"{errors.PROG} {command} on {backend_switch.running_backend()}")
    width = max(len(name) for name, _ in rows) + 1
    for name, value in rows:
        print(f"  {name + ':':<{width}} {value}")
    print(flush=True)


def print_outputs(rows):
    """`name  path` for each written file that exists."""
    written = [(name, path) for name, path in rows if os.path.exists(path)]
    if not written:
        return
    width = max(len(name) for name, _ in written)
    print("Outputs:")
    for name, path in written:
        print(f"  {name:<{width}}  {path}")
    print(flush=True)
