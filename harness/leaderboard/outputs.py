"""Where the leaderboard writes: new folders and files made as a plain mkdir and open would make them.

tempfile's mkdtemp and mkstemp create mode 0700 and 0600 whatever the umask, which leaves a submission
folder or a site that no one else (a web server, a shared folder) can read. These helpers make the
temporary names that outputs are staged under with os.mkdir and open(..., "x"), so the umask applies.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def _fresh(parent: Path, prefix: str, make) -> Path:
    while True:
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        try:
            make(path)
            return path
        except FileExistsError:
            continue


def new_folder(parent: Path, prefix: str) -> Path:
    """A new, empty folder `parent/<prefix><random>`, its mode what the umask gives."""
    return _fresh(parent, prefix, lambda path: path.mkdir())


def write_new_file(parent: Path, prefix: str, text: str) -> Path:
    """`text` in a new file `parent/<prefix><random>`, its mode what the umask gives; returns its path."""
    def make(path: Path) -> None:
        with open(path, "x", encoding="utf-8") as file:
            try:
                file.write(text)
            except BaseException:
                path.unlink()
                raise

    return _fresh(parent, prefix, make)


def unused_name(parent: Path, prefix: str) -> Path:
    """A path `parent/<prefix><random>` that does not exist now, to move something aside to."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        if not os.path.lexists(path):
            return path
