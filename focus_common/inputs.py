"""Reading what users give: small text and JSON files opened safely, files hashed.

A path a user names may be a FIFO (opening it would wait for a writer), a device (never ends), a huge
file, or bytes that are not text. Every small file the project reads (tables, lists of models, prompt
templates, the JSON files of a run folder) goes through `read_small_text`, which opens regular files only,
reads a bounded number of bytes and decodes UTF-8, and says which file and what was expected otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 64 * 2**20


def read_small_text(path: str | Path, what: str, max_bytes: int = 2**20) -> str:
    """A user's small text file (a table, a list of models, prompt templates), read safely.

    Only a regular file is opened (a FIFO or a device would block or never end), at most `max_bytes`
    are read, and the bytes must be UTF-8. Every failure is a ValueError naming the file and `what`
    was expected.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; what was opened is checked, not the path.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror}); expected {what}") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise ValueError(f"{path}: not a regular file; expected {what}")
    with os.fdopen(descriptor, "rb") as file:
        try:
            data = file.read(max_bytes + 1)
        except OSError as err:
            raise ValueError(f"{path}: cannot be read ({err.strerror}); expected {what}") from None
    if len(data) > max_bytes:
        raise ValueError(f"{path}: larger than {max_bytes:,} bytes; expected {what}, a small text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); expected {what}") from None


def read_json(path: str | Path, what: str = "a JSON file written by the harness", max_bytes: int = MAX_JSON_BYTES,
              advice: str = "Delete it and rerun the command that wrote it.") -> Any:
    """A JSON file read safely (a regular file, `max_bytes` at most); a damaged one is a ValueError naming it."""
    path = Path(path)
    text = read_small_text(path, what, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is damaged: not valid JSON ({err}). {advice}") from None
    except RecursionError:
        raise ValueError(f"{path} is damaged: nested too deeply to be {what}. {advice}") from None


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file, read in chunks (weights, submitted files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
