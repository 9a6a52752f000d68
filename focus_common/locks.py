"""One lock per folder that a command writes in: `FOLDER/.lock`, the kernel's flock, naming its holder.

Every command that writes in a folder a second command could write in at the same time holds its lock:
focus-eval, focus-probe and focus-gradcam a model's folder (and focus-eval the run folder while it
writes run.json and the report), convert and pack the staging folder they build their output in. The
lock is the kernel's, so a killed holder never leaves it held; the file keeps the holder's description
("focus-eval of resnet50 (pid 4242 on node7, since 2026-12-04T10:00:00+00:00)"), which the next command
names when the folder is in use, and logs as stale when the holder died without letting go.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import logging
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
_HOLDER_CHARACTERS = 200  # of a holder's description read back (a lock file holds one short line)
# A staging folder without a lock file is either a command between creating its folder and its lock, or a
# leftover of a command killed right then: only an old one is a leftover.
UNLOCKED_GRACE_S = 60
# How long a command waits for a folder another command holds for a moment (run.json, the report, figures).
WAIT_S, WAIT_POLL_S = 600, 0.2
IN_USE_ADVICE = ("wait for it to finish, or write to another --output (two commands writing one model's results at "
                 "once would each redo the other's work)")


class FolderInUse(RuntimeError):
    """Another live command holds the folder's lock."""


def holder_text(holder: str) -> str:
    """How a lock file describes its holder: what it does, pid, host and since when."""
    since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return f"{holder} (pid {os.getpid()} on {socket.gethostname()}, since {since})"


def _open_lock(folder: Path):
    if folder.is_symlink():
        raise RuntimeError(f"{folder} is a symbolic link; the harness writes in a run's own folders only")
    path = folder / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as err:
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise RuntimeError(f"{folder}: cannot be written ({err.strerror}): write to another folder") from None
        raise RuntimeError(f"{path} cannot be opened as a lock file ({err.strerror}): remove it") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # what was opened is checked, not the path
        os.close(descriptor)
        raise RuntimeError(f"{path} is not a regular file: remove it")
    return os.fdopen(descriptor, "r+", encoding="utf-8", errors="replace")


@contextlib.contextmanager
def folder_lock(folder: str | Path, holder: str, *, wait: bool = False,
                in_use: str = IN_USE_ADVICE) -> Iterator[None]:
    """Hold `folder`/.lock while the block runs; a second command stops at once with FolderInUse naming the holder.

    With `wait`, a held lock is waited for instead, for WAIT_S at most: a holder that does not let go (stopped
    with Ctrl-Z, hung on a network file system) is named in the log at once and in the error at the end.
    `in_use` is the advice the error gives. A folder that is a symbolic link, or a lock file that is a link or
    not a regular file, is refused.
    """
    folder = Path(folder)
    handle = _open_lock(folder)
    try:
        _take(handle, folder, wait, in_use)
    except BaseException:
        handle.close()
        raise
    try:
        left = _description(handle)
        if left:
            logger.warning("%s: a stale lock of %s, which no longer runs (killed?): taking it", folder, left)
        handle.seek(0)
        handle.truncate()
        handle.write(holder_text(holder))
        handle.flush()
        yield
    finally:
        handle.seek(0)
        handle.truncate()  # let go cleanly: an empty lock file is not stale
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _take(handle, folder: Path, wait: bool, in_use: str) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        held_by = _description(handle) or "another process"
    if not wait:
        raise FolderInUse(f"{folder} is in use by {held_by}: {in_use}")
    logger.warning("%s is in use by %s: waiting for it (at most %d s)", folder, held_by, WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        time.sleep(WAIT_POLL_S)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            continue
    raise FolderInUse(f"{folder} is still in use by {_description(handle) or held_by} after {WAIT_S} s: if that "
                      f"process is stopped (Ctrl-Z) resume it with fg, or end it; then run this command again")


def _description(handle) -> str:
    handle.seek(0)
    return handle.read(_HOLDER_CHARACTERS).strip()


def held_by(folder: Path) -> str | None:
    """Who holds `folder`'s lock now ("unknown" when unsure), or None when no live process does (a leftover)."""
    try:
        handle = _open_existing(folder / LOCK_FILE)
    except OSError as err:
        if not isinstance(err, FileNotFoundError):
            return "unknown"  # a link or something unreadable in the lock's place: not a leftover to remove
        # No lock (yet, or any more): see UNLOCKED_GRACE_S.
        try:
            recent = time.time() - folder.stat().st_ctime < UNLOCKED_GRACE_S
        except FileNotFoundError:
            return None
        return "unknown" if recent else None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _description(handle) or "unknown"
        return None


def _open_existing(path: Path):
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    return os.fdopen(descriptor, "r", encoding="utf-8", errors="replace")
