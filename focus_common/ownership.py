"""What a command wrote, recorded, so that it replaces and deletes only that.

A file's name says nothing about who wrote it: a user's `metrics.json`, or `parts/part-2024-draft.txt`,
looks like the harness's own. Every folder a command writes files in gets a manifest, `.focus-written.json`,
recording each file it wrote by its content (size and SHA-256: a copied run folder stays the toolkit's, an
edited or replaced file does not). A command replaces a file only when the file is absent or recorded with
the same content, and deletes only such files; anything else in its way stops it with a message that names
the file and says what to do. Nothing is taken on its name.

The manifest is changed only by a command that holds the folder's lock (focus_common.locks), so that two
writers never race on it; a damaged or missing manifest records nothing, which makes every file "not ours":
the safe way to be wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from focus_common import outputs
from focus_common.inputs import sha256_file
from focus_common.messages import BadInput

MANIFEST = ".focus-written.json"
_MAX_MANIFEST_BYTES = 16 * 2**20
WHOLE_HASH_BYTES, SAMPLE_BYTES = 64 * 2**20, 2**20
_HEAD_BYTES = 200  # of a growing log, the line it starts with
# What a folder may hold beside the files its manifest records and still be deleted whole: the manifest (and
# what a killed write of it leaves, ".focus-written.json.<random>") and the folder's lock.
_BOOKKEEPING = (MANIFEST, ".lock")


class NotWrittenHere(BadInput):
    """A file in a command's way that no manifest says the command wrote."""


def identity(path: Path, size_only: bool = False) -> dict[str, Any] | None:
    """A file's content, as the manifest records it: its size and SHA-256, of the whole file up to WHOLE_HASH_BYTES
    and beyond that of its first and last SAMPLE_BYTES (a dataset's shards run to gigabytes; their Parquet
    footers are in the last bytes). The size alone with size_only, to compare cheaply first. None for anything
    but a regular file (a link, a folder, a FIFO: never an output)."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    if size_only:
        return {"size": status.st_size}
    if status.st_size <= WHOLE_HASH_BYTES:
        return {"size": status.st_size, "sha256": sha256_file(path)}
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        digest.update(file.read(SAMPLE_BYTES))
        file.seek(status.st_size - SAMPLE_BYTES)
        digest.update(file.read(SAMPLE_BYTES))
    return {"size": status.st_size, "sample_sha256": digest.hexdigest()}


def _head(path: Path) -> str | None:
    """A file's first line (at most _HEAD_BYTES): what a log that others append to is known by."""
    try:
        with open(path, "rb") as file:
            return file.readline(_HEAD_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


class Written:
    """The manifest of one folder: the files commands wrote there (or in its subfolders: a dataset keeps one
    manifest at its root, none among its shards), by relative path, with their content."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST

    def _key(self, path: str | os.PathLike) -> str:
        return Path(path).relative_to(self.folder).as_posix()

    def records(self) -> dict[str, dict[str, Any]]:
        """{file name: identity}; empty when the manifest is missing, damaged or not a regular file."""
        if identity(self.path) is None:
            return {}
        try:
            with open(self.path, "rb") as file:
                data = json.loads(file.read(_MAX_MANIFEST_BYTES + 1) or b"{}")
        except (OSError, ValueError, RecursionError):
            return {}
        files = data.get("files") if isinstance(data, dict) else None
        return {name: record for name, record in files.items() if isinstance(record, dict)} if isinstance(
            files, dict) else {}

    def owns(self, path: str | os.PathLike) -> bool:
        """Whether `path` (in this folder) is a file a command wrote here and nobody has touched since (a log that
        grows: nobody has put another file in its place)."""
        path = Path(path)
        current, recorded = identity(path, size_only=True), self.records().get(self._key(path))
        if current is None or recorded is None:
            return False
        if recorded.get("staged"):  # a fresh random name the toolkit chose and recorded before writing it
            return True
        if "head" in recorded:  # a log another process appends to: known by the line it starts with
            return _head(path) == recorded["head"]
        return recorded.get("size") == current["size"] and recorded == identity(path)

    def record(self, *paths: str | os.PathLike, growing: bool = False) -> None:
        """Record files just written in this folder (whole: written under a fresh name, then renamed); a `growing`
        file (a log another process appends to) is known by the line it starts with."""
        records = self.records()
        for path in map(Path, paths):
            records[self._key(path)] = {"head": _head(path)} if growing else identity(path)
        self._save(records)

    def forget(self, *keys: str) -> None:
        records = self.records()
        if any(records.pop(key, None) is not None for key in keys):
            self._save(records)

    def _save(self, records: dict[str, dict[str, int] | None]) -> None:
        kept = {name: record for name, record in sorted(records.items()) if record is not None}
        outputs.write_atomic(self.path, json.dumps({"version": 1, "files": kept}, indent=1) + "\n")

    def check_replaceable(self, path: str | os.PathLike, doing: str = "replaced") -> None:
        """Stop when `path` exists and is not a file a command wrote here (`doing`: what it would have been)."""
        path = Path(path)
        if os.path.lexists(path) and not self.owns(path):
            raise NotWrittenHere(f"{path}: not a file this toolkit wrote there (no record of it in {MANIFEST}), so "
                                 f"it is not {doing}: move it away, or write to another folder")

    def replace(self, path: str | os.PathLike, write: Callable[[Path], None] | str | bytes) -> None:
        """Write `path` whole, only over a file written here before: `write` is the data, or a function writing to
        the staged name it is given (Parquet, PNG writers). The staged name is recorded before it is written, so
        that what a killed write leaves behind is known to be the toolkit's."""
        path = Path(path)
        self.check_replaceable(path)
        staged = outputs.unused_name(path.parent, f".{path.name}.")
        records = self.records()
        self._save(records | {self._key(staged): {"staged": True}})
        try:
            outputs.replace_with(path, write if callable(write) else lambda name: outputs.write_exclusive(name, write),
                                 staged)
        finally:
            key = self._key(path)
            records[key] = identity(path) if path.exists() else records.get(key)
            self._save(records)

    def check_removable(self, path: str | os.PathLike, doing: str = "deleted") -> None:
        """Stop unless `path` is absent, a file written here, or a folder of files written there (see remove)."""
        path = Path(path)
        if os.path.lexists(path) and stat.S_ISDIR(os.lstat(path).st_mode):
            Written(path).check_all(doing)
        else:
            self.check_replaceable(path, doing)

    def remove(self, path: str | os.PathLike, doing: str = "deleted") -> None:
        """Delete `path` when a command wrote it here (a folder: when every file in it was written there);
        nothing at all when anything in it was not, with an error that names the first such entry."""
        path = Path(path)
        self.check_removable(path, doing)
        if not os.path.lexists(path):
            return
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            path.unlink()
            self.forget(self._key(path))

    def check_all(self, doing: str = "deleted") -> None:
        """Stop unless this folder holds only files written there (and its bookkeeping)."""
        strangers = [entry for entry in sorted(os.listdir(self.folder))
                     if not entry.startswith(_BOOKKEEPING) and not self.owns(self.folder / entry)]
        if strangers:
            raise NotWrittenHere(
                f"{self.folder / strangers[0]}: not a file this toolkit wrote there (no record of it in {MANIFEST}), "
                f"so {self.folder} is not {doing} ({len(strangers)} such entr{'y' if len(strangers) == 1 else 'ies'}):"
                f" move them away, or write to another folder")


def is_written(path: str | os.PathLike, root: str | os.PathLike | None = None) -> bool:
    """Whether `path` is a file the toolkit wrote and nobody has changed since, as the manifest of its folder (or
    of `root`, a folder above it) records."""
    path = Path(path)
    return Written(path.parent if root is None else root).owns(path)


def written_files(folder: str | os.PathLike) -> list[str]:
    """The (relative) paths of the files commands wrote in `folder` that are still as they wrote them."""
    written = Written(folder)
    return [key for key in written.records() if written.owns(written.folder / key)]


def remove_written(paths: Iterable[Path], doing: str = "deleted") -> None:
    """Delete each path as Written.remove does, in its own folder's manifest: every one is checked before any
    is deleted, so a refusal leaves them all in place."""
    paths = [Path(path) for path in paths]
    for path in paths:
        Written(path.parent).check_removable(path, doing)
    for path in paths:
        Written(path.parent).remove(path, doing)
