"""render: verified submissions become leaderboard.md and a self-contained index.html, one table per protocol.

Every folder is verified, copies are rejected (comparisons.reject_copies), the tables and their statistics
are built once (tables.leaderboard_tables) and written as Markdown (markdown.py) and a page (page.py).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Sequence

from focus_tools import outputs
from harness.leaderboard.comparisons import flag_near_copies, reject_copies
from harness.leaderboard.errors import LeaderboardError
from harness.leaderboard.markdown import render_markdown
from harness.leaderboard.page import render_html
from harness.leaderboard.strict import Limits
from harness.leaderboard.tables import leaderboard_tables
from harness.leaderboard.verification import GroundTruth, Verification, submission_folders, verify

logger = logging.getLogger("focus-leaderboard")


class StrictRenderError(LeaderboardError):
    """render --strict found submissions that fail verification, and wrote nothing."""

    def __init__(self, skipped: list[Verification]):
        self.skipped = skipped
        names = ", ".join(v.submission.name for v in skipped)
        super().__init__(f"{len(skipped)} submission(s) failed verification ({names}); nothing was written "
                         f"(--strict)")


MARKDOWN_FILE = "leaderboard.md"
HTML_FILE = "index.html"


# How render knows its own pages, the only files in OUT that it replaces: how each begins.
_SIGNATURES = {MARKDOWN_FILE: "# FOCUS leaderboard\n",
               HTML_FILE: "<!DOCTYPE html>\n<!-- Written by `focus-leaderboard render`"}


def _check_out(out: Path, folders: Sequence[Path]) -> None:
    """Refuse an OUT inside a submission, and pages in OUT that render did not write."""
    resolved = out.resolve()
    inside = [folder for folder in folders if folder.resolve() in resolved.parents]
    if inside:
        raise LeaderboardError(f"{out}: lies inside the submission folder {inside[0]}; write the site outside every "
                               f"submission")
    for name, signature in _SIGNATURES.items():
        path = out / name
        if os.path.lexists(path) and not _written_by_render(path, signature):
            raise LeaderboardError(f"{path}: not a page that render wrote; render replaces only its own "
                                   f"{MARKDOWN_FILE} and {HTML_FILE} (move it, or choose another OUT)")


def _written_by_render(path: Path, signature: str) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as file:
        return file.read(len(signature.encode())) == signature.encode()


def _write_files(out: Path, files: dict[str, str]) -> None:
    """Each file is complete or absent: written to a temporary name beside it, then renamed."""
    out.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for name, text in files.items():
            staged.append((outputs.write_new_file(out, f".{name}.", text), out / name))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def render(
    submissions_dir: str | os.PathLike,
    out: str | os.PathLike,
    truth: GroundTruth,
    *,
    strict: bool = False,
    limits: Limits = Limits(),
    now: datetime | None = None,
) -> list[Verification]:
    """Verify every submission folder and write OUT/leaderboard.md and OUT/index.html; return the verifications.

    Submissions that fail verification, and copies of earlier ones (comparisons.reject_copies), are left
    out and listed under "Not shown". With `strict`, any such submission stops the render before anything
    is written. Files in OUT that render did not write are never replaced.
    """
    out = Path(out)
    folders = submission_folders(submissions_dir, exclude=out)  # OUT may sit among the submissions
    _check_out(out, folders)
    logger.info("verifying %d submission folder(s) in %s", len(folders), submissions_dir)
    verifications = [verify(folder, truth, limits=limits, now=now) for folder in folders]
    reject_copies(verifications)
    flag_near_copies(verifications)
    skipped = [v for v in verifications if not v.accepted]
    if strict and skipped:
        raise StrictRenderError(skipped)
    tables = leaderboard_tables([v for v in verifications if v.accepted], truth)
    _write_files(out, {MARKDOWN_FILE: render_markdown(tables, skipped, truth),
                       HTML_FILE: render_html(tables, skipped, truth)})
    return verifications
