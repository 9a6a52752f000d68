"""How render writes its files into OUT: together, so that the pages a reader finds come from one render.

OUT may hold its owner's files, so render cannot build a new OUT and swap it in; it writes only its own
files there (leaderboard.md, index.html, the ledger accepted.json) and its folder OUT/.focus-leaderboard,
which holds its lock, the commit record and the files being written. A commit writes every file in that
folder under a new name, then the record of what goes where (commit.json, itself written whole), then
takes the old pages away and renames the new files into place, the pages before the ledger, and drops the
record. So OUT's pages are the old pair until the record exists, and from then on only pages of the new
render (one may be missing for a moment, never one of each). A render killed midway leaves the record; the
next render, under the folder's lock, completes that commit before anything else, and removes what a
render killed before its record left. Each page carries its render's generation (`generation`), a hash
of the Markdown, for a reader that wants to check that the two agree.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from focus_common import locks, outputs
from harness.leaderboard.errors import LeaderboardError
from harness.leaderboard.strict import loads_strict

RENDER_FOLDER = ".focus-leaderboard"
COMMIT_FILE = "commit.json"
_WRITER = "focus-leaderboard render"
# What render leaves in its folder when killed: files staged as `<name>.<12 hex digits>`
# (outputs.write_new_file), and a commit record being written (`.commit.json.<12 hex digits>`, write_atomic).
_STAGED = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)\.[0-9a-f]{12}")
_GENERATION = re.compile(r"focus-leaderboard generation ([0-9a-f]{16})")


def generation(markdown: str) -> str:
    """A render's generation: what its pages say they come from, the same for the same leaderboard.

    >>> generation("# FOCUS leaderboard\\n")
    '9ce4f1081373cd99'
    """
    return hashlib.sha256(markdown.encode()).hexdigest()[:16]


def generation_mark(value: str) -> str:
    """The generation as the pages carry it (a Markdown comment, an HTML meta tag's content)."""
    return f"focus-leaderboard generation {value}"


def generation_of(path: str | os.PathLike) -> str | None:
    """The generation that a page of render's carries, None for a page without one (or no page)."""
    try:
        found = _GENERATION.search(Path(path).read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return None
    return found[1] if found else None


@contextlib.contextmanager
def locked(out: Path) -> Iterator[Path]:
    """OUT's render folder, created if need be and locked while the block runs: one render at a time writes OUT.

    A commit that a killed render left is completed first (finish_commit).
    """
    folder = out / RENDER_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LeaderboardError(f"{out}: cannot write the site here ({err.strerror}); choose another OUT") from None
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(locks.folder_lock(folder, _WRITER, in_use="wait for it to finish, or render into "
                                                                           "another OUT"))
        except locks.FolderInUse:
            raise
        except RuntimeError as err:  # a lock file that cannot be written
            raise LeaderboardError(f"{out}: cannot write the site here: {err}") from None
        finish_commit(out)
        yield folder


def commit(out: Path, files: dict[str, str]) -> None:
    """Write `files` (name -> text) into OUT together, under the lock of `locked`; see the module's docstring.

    A failure before the record is written (a full disk, a read-only folder) leaves OUT as it was.
    """
    folder, staged = out / RENDER_FOLDER, {}
    try:
        for name, text in files.items():
            staged[name] = outputs.write_new_file(folder, f"{name}.", text).name
        outputs.write_atomic(folder / COMMIT_FILE, json.dumps({"written_by": _WRITER, "files": staged}) + "\n")
    except OSError as err:
        for name in staged.values():
            (folder / name).unlink(missing_ok=True)
        raise LeaderboardError(f"{out}: cannot write the site ({err.strerror}); the pages there are unchanged") \
            from None
    _apply(out, staged)


def _is_page(name: str) -> bool:
    return name.endswith((".md", ".html"))


def _apply(out: Path, staged: dict[str, str]) -> None:
    """Put the staged files at their names: every page still to be replaced is taken away first, so that no
    older page stands beside a newer one; then the record is dropped. Completes a commit begun before too."""
    folder = out / RENDER_FOLDER
    pending = {name: folder / path for name, path in staged.items() if os.path.lexists(folder / path)}
    try:
        for name in filter(_is_page, pending):
            (out / name).unlink(missing_ok=True)
        for name, path in sorted(pending.items(), key=lambda item: not _is_page(item[0])):  # the pages first
            os.replace(path, out / name)
    except OSError as err:  # OUT made read-only since: the record stays, for the next render to complete
        raise LeaderboardError(f"{out}: cannot put the new pages in place ({err.strerror}); the next render into "
                               f"it completes this one") from None
    (folder / COMMIT_FILE).unlink()


def finish_commit(out: Path) -> None:
    """Complete the commit that a killed render left recorded, and remove the files of one killed before its
    record; anything else in the render folder is left alone."""
    folder = out / RENDER_FOLDER
    record = folder / COMMIT_FILE
    if os.path.lexists(record):
        _apply(out, _read_record(record))
    for entry in os.scandir(folder):
        if _STAGED.fullmatch(entry.name.removeprefix(".")) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)


def _read_record(record: Path) -> dict[str, str]:
    """A commit record as render writes it: each of its files' names -> a staged file's name in its folder."""
    problem = f"{record}: not a commit record that render wrote; remove it (the pages may be those of two renders)"
    if not stat.S_ISREG(os.lstat(record).st_mode):
        raise LeaderboardError(problem)
    try:
        data = loads_strict(record.read_bytes())
    except (OSError, ValueError) as err:
        raise LeaderboardError(f"{problem} ({err})") from None
    staged = data.get("files") if isinstance(data, dict) and data.get("written_by") == _WRITER else None
    if not isinstance(staged, dict) or not all(
            isinstance(path, str) and (found := _STAGED.fullmatch(path)) and found["name"] == name
            for name, path in staged.items()):
        raise LeaderboardError(problem)
    return staged
