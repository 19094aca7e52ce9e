"""Files that a killed process never leaves half written."""

import json
import os


def write_json_atomically(path, record):
    """Writes `record` as JSON to `path`, all or nothing.

    The record goes to `path + ".tmp"`, is flushed to disk, and replaces
    `path` in one `os.replace`: a process killed at any moment leaves either
    the previous file or the new one, never a truncated one.

    Args:
        path: the file to write.
        record: a JSON-serialisable object.
    """
    temporary = os.fspath(path) + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(record, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
