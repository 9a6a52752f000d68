"""How the commands write: new folders and files made as a plain mkdir and open would make them, and files
replaced whole.

tempfile's mkdtemp and mkstemp create mode 0700 and 0600 whatever the umask, which leaves a submission
folder, a site or a run folder that no one else (a web server, a shared folder) can read. These helpers
make the temporary names that outputs are staged under with os.mkdir and open(..., "x"), so the umask
applies, and "x" never writes through a symbolic link planted at the name. A file is written under a
fresh name beside it and renamed over the old one: a reader, or a command killed midway, never sees
half a file.

A command whose output is a folder (convert, pack) builds it in a hidden staging folder beside it that it
locks while it lives (staged_folder): the output appears only when whole, an earlier one steps aside and
loses only the files the command had written, a staging folder that no live process holds is a leftover of a
command killed outright (removed by the next run into the same output), and one that a live process holds
makes the next run stop and name its holder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from focus_common import locks

logger = logging.getLogger(__name__)


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
    return _fresh(parent, prefix, lambda path: write_exclusive(path, data))


def write_exclusive(path: Path, data: str | bytes) -> None:
    """`data` (text as UTF-8) in a new file at `path` ("x": never through a link planted there), mode per umask."""
    with open(path, "xb") as file:
        try:
            file.write(data.encode("utf-8") if isinstance(data, str) else data)
        except BaseException:
            path.unlink()
            raise


class CannotWrite(OSError):
    """An OSError that names the file a write failed on (a full or read-only disk says only what, not where)."""

    def __init__(self, path: Path, err: OSError):
        super().__init__(err.errno, err.strerror or str(err))
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: cannot be written ({self.strerror})"


def cannot_write(path: Path, err: OSError) -> OSError:
    return err if isinstance(err, CannotWrite) else CannotWrite(path, err)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """`data` at `path`, replacing what was there whole: written under a new name beside it, then renamed."""
    path = Path(path)
    try:
        staged = write_new_file(path.parent, f".{path.name}.", data)
    except OSError as err:
        raise cannot_write(path, err) from None
    try:
        os.replace(staged, path)
    except OSError as err:
        staged.unlink(missing_ok=True)
        raise cannot_write(path, err) from None


def replace_with(path: str | os.PathLike, write: Callable[[Path], None], staged: Path | None = None) -> None:
    """Replace `path` whole with what `write(staged)` writes to a fresh name beside it (Parquet, PNG writers)."""
    path = Path(path)
    staged = staged or unused_name(path.parent, f".{path.name}.")
    try:
        write(staged)
        os.replace(staged, path)
    except OSError as err:
        staged.unlink(missing_ok=True)
        raise cannot_write(path, err) from None
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def unused_name(parent: Path, prefix: str) -> Path:
    """A path `parent/<prefix><random>` that does not exist now, to move something aside to."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        if not os.path.lexists(path):
            return path


class StagedOutput:
    """An output folder being built: write into `folder`, then `commit` puts it at `output` whole."""

    def __init__(self, output: Path, partial: Path):
        self.output, self.partial, self.folder = output, partial, partial / "new"

    def commit(self, owns: Callable[[Path, Path], bool]) -> None:
        """Put the staged folder at `output`. An earlier output there steps aside first, and only the files that
        `owns(folder, path)` says the command wrote (folder: where the earlier output now is) are deleted;
        anything else is kept beside the output and named in the log."""
        aside = self.partial / "replaced"
        if os.path.lexists(self.output):
            os.rename(self.output, aside)
        try:
            os.replace(self.folder, self.output)
        except BaseException:
            if os.path.lexists(aside):
                os.rename(aside, self.output)
            raise
        if os.path.lexists(aside):
            _remove_owned(aside, owns, self.output)


def _remove_owned(folder: Path, owns: Callable[[Path, Path], bool], output: Path) -> None:
    owned = [Path(root, name) for root, _, files in os.walk(folder) for name in files if owns(folder, Path(root, name))]
    for path in owned:
        path.unlink()
    for root, folders, files in os.walk(folder, topdown=False):
        if owned and root == str(folder):  # its bookkeeping goes with the files it records
            for name in files:
                if name.startswith((".focus-written.json", ".lock")):
                    Path(root, name).unlink()
        for name in folders:
            with contextlib.suppress(OSError):
                Path(root, name).rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()
    if os.path.lexists(folder):
        kept = unused_name(output.parent, f".{output.name}.replaced-")
        os.rename(folder, kept)
        logger.warning("%s held files its command had not written: the earlier output is kept as %s", output, kept)


def partial_folders(output: Path) -> list[Path]:
    """The staging folders of runs into `output`: `.OUTPUT.partial-XXXXXXXXXXXX`, folders only."""
    pattern = re.compile(rf"\.{re.escape(output.name)}\.partial-[A-Za-z0-9_]+")
    try:
        names = sorted(os.listdir(output.parent))
    except FileNotFoundError:
        return []
    return [output.parent / name for name in names
            if pattern.fullmatch(name) and stat.S_ISDIR(os.lstat(output.parent / name).st_mode)]


@contextlib.contextmanager
def staged_folder(output: Path, *, holder: str, what: str,
                  error: Callable[[str], Exception] = ValueError) -> Iterator[StagedOutput]:
    """A new hidden folder `.OUTPUT.partial-XXXXXXXXXXXX` beside `output`, locked by this process while it lives
    and removed on any failure (Ctrl-C, a signal that run_command turns into an exit, an exception).

    Leftovers of runs killed outright are removed first; a live run into the same output stops this one with
    `error` naming it (`what` names the kind of run: "conversion", "pack"). Its mode is what a plain mkdir
    gives under the umask (tempfile's 0700 would keep a shared folder from its readers).
    """
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        for leftover in partial_folders(output):
            if locks.held_by(leftover) is None:
                shutil.rmtree(leftover, ignore_errors=True)
        partial = new_folder(output.parent, f".{output.name}.partial-")
    except OSError as err:
        raise error(f"{output}: cannot write OUTPUT here: {err.strerror}") from err
    try:
        with locks.folder_lock(partial, holder):
            for other in partial_folders(output):
                owner = locks.held_by(other) if other != partial else None
                if owner is not None:
                    raise error(f"another {what} into {output} is running ({owner}), writing {other.name}; wait for "
                                f"it to finish, or choose another output")
            (partial / "new").mkdir()
            yield StagedOutput(output, partial)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
