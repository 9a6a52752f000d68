"""How the commands write: new folders and files made as a plain mkdir and open would make them, and files
replaced whole.

tempfile's mkdtemp and mkstemp create mode 0700 and 0600 whatever the umask, which leaves a submission
folder, a site or a run folder that no one else (a web server, a shared folder) can read. These helpers
make the temporary names that outputs are staged under with os.mkdir and open(..., "x"), so the umask
applies, and "x" never writes through a symbolic link planted at the name. A file is written under a
fresh name beside it and renamed over the old one: a reader, or a command killed midway, never sees
half a file.

A command that stages a folder beside its output (convert, pack) locks it while it lives (holding_lock):
a staging folder that no live process holds is a leftover of a command killed by a signal, which the next
run removes (remove_stale), and one that a live process holds is left alone (live_owner names it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

LOCK_NAME = ".lock"
# A staging folder without a lock file is either a command between creating its folder and its lock
# (or swapping it into place), or a leftover: only an old one is a leftover.
UNLOCKED_GRACE_S = 60


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


def write_new_file(parent: Path, prefix: str, data: str | bytes) -> Path:
    """`data` (text as UTF-8) in a new file `parent/<prefix><random>`, its mode what the umask gives; its path."""
    def make(path: Path) -> None:
        with open(path, "xb") as file:
            try:
                file.write(data.encode("utf-8") if isinstance(data, str) else data)
            except BaseException:
                path.unlink()
                raise

    return _fresh(parent, prefix, make)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """`data` at `path`, replacing what was there whole: written under a new name beside it, then renamed."""
    path = Path(path)
    staged = write_new_file(path.parent, f".{path.name}.", data)
    try:
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def replace_with(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Replace `path` whole with what `write(staged)` writes to a fresh name beside it (Parquet, PNG writers)."""
    path = Path(path)
    staged = unused_name(path.parent, f".{path.name}.")
    try:
        write(staged)
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def unused_name(parent: Path, prefix: str) -> Path:
    """A path `parent/<prefix><random>` that does not exist now, to move something aside to."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        if not os.path.lexists(path):
            return path


@contextlib.contextmanager
def holding_lock(folder: Path) -> Iterator[None]:
    """Hold `folder/.lock` (flock, with this process's pid in it) while the block runs: the folder is live."""
    with (folder / LOCK_NAME).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def live_owner(folder: Path) -> str | None:
    """The pid of the live process holding a staging folder ("unknown" when unsure), or None for a leftover."""
    try:
        with (folder / LOCK_NAME).open("r") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return lock.read(20).strip() or "unknown"
            return None
    except FileNotFoundError:  # no lock (yet, or any more): see UNLOCKED_GRACE_S
        pass
    try:
        recent = time.time() - folder.stat().st_ctime < UNLOCKED_GRACE_S
    except FileNotFoundError:
        return None
    return "unknown" if recent else None


def remove_stale(folders: Iterable[Path]) -> None:
    """Remove the staging folders that no live process holds: leftovers of commands killed by a signal."""
    for folder in folders:
        if live_owner(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)
