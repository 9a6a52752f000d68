"""render: verified submissions become leaderboard.md and a self-contained index.html, one table per board.

Every folder is verified, copies are rejected (comparisons.reject_copies), the tables and their statistics
are built once (tables.leaderboard_tables) and written as Markdown (markdown.py) and a page (page.py).

Which of two identical submissions is the copy must not rest on what a submitter writes: a copy can claim
any `submitted` date. So render keeps a ledger beside its pages, OUT/accepted.json: every submission it
has accepted, by folder name, with the SHA-256 of its predictions and when render first accepted it. A
submission whose folder and predictions the ledger holds came before every one it does not hold; only
between submissions that no earlier render accepted (a first render, two arrivals between renders) does
the claimed date decide. An entry is kept while its folder is away or rejected, and replaced when the
folder comes back accepted with other predictions (a resubmission is a new arrival).

The pages and the ledger are written together (writing.commit): a reader never finds pages of two
renders side by side, and a render killed midway has its commit completed by the next one.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from focus_common.inputs import read_small_text
from harness.leaderboard import writing
from harness.leaderboard.comparisons import flag_near_copies, reject_copies
from harness.leaderboard.errors import LeaderboardError
from harness.leaderboard.markdown import render_markdown
from harness.leaderboard.page import render_html
from harness.leaderboard.strict import Limits, loads_strict
from harness.leaderboard.submission import PREDICTIONS_FILE
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
LEDGER_FILE = "accepted.json"
_LEDGER_WRITER = "focus-leaderboard render"
LEDGER_MAX_BYTES = 256 * 2**20  # about a million entries


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


def read_ledger(out: str | os.PathLike) -> dict[str, dict]:
    """The submissions that renders into OUT accepted: folder name -> {predictions_sha256, first_accepted}."""
    path = Path(out) / LEDGER_FILE
    if not os.path.lexists(path):
        return {}
    if path.is_symlink():
        raise LeaderboardError(f"{path}: a symbolic link, not the ledger of accepted submissions that render "
                               f"writes; move it, or choose another OUT")
    try:
        # A regular file only, read within a bound (a FIFO or a huge file planted there must not hang render).
        text = read_small_text(path, "the ledger of accepted submissions that render writes", LEDGER_MAX_BYTES)
    except ValueError as err:
        raise LeaderboardError(str(err)) from None
    try:
        ledger = loads_strict(text)  # nested no deeper than the ledger is: a deep document is refused unparsed
        if ledger.get("written_by") != _LEDGER_WRITER:
            raise ValueError(f"written_by is not {_LEDGER_WRITER!r}")
        return {str(name): {"predictions_sha256": str(entry["predictions_sha256"]),
                            "first_accepted": _aware(datetime.fromisoformat(entry["first_accepted"]))}
                for name, entry in ledger["accepted"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise LeaderboardError(f"{path}: not the ledger of accepted submissions that render writes ({err}); move "
                               f"it, or choose another OUT") from err


def _aware(date: datetime) -> datetime:
    return date if date.tzinfo else date.replace(tzinfo=timezone.utc)


def _predictions_sha256(verification: Verification) -> str:
    """The SHA-256 of a submission's predictions (verify checked the recorded one against the file)."""
    return verification.metadata["files"][PREDICTIONS_FILE]["sha256"]


def _accepted_before(ledger: dict[str, dict], verifications: Sequence[Verification]) -> dict[str, datetime]:
    """Folder name -> when first accepted, for the verified submissions that the ledger holds unchanged."""
    return {v.submission.name: ledger[v.submission.name]["first_accepted"] for v in verifications
            if v.accepted and v.submission.name in ledger
            and ledger[v.submission.name]["predictions_sha256"] == _predictions_sha256(v)}


def _ledger_text(ledger: dict[str, dict], accepted_before: dict[str, datetime],
                 verifications: Sequence[Verification], now: datetime) -> str:
    """The ledger with this render's newly accepted submissions added, accepted `now`."""
    entries = dict(ledger)
    for v in verifications:
        if v.accepted and v.submission.name not in accepted_before:
            entries[v.submission.name] = {"predictions_sha256": _predictions_sha256(v), "first_accepted": now}
    accepted = {name: {"predictions_sha256": entry["predictions_sha256"],
                       "first_accepted": entry["first_accepted"].isoformat()}
                for name, entry in sorted(entries.items())}
    return json.dumps({"written_by": _LEDGER_WRITER, "accepted": accepted}, indent=2) + "\n"


def render(
    submissions_dir: str | os.PathLike,
    out: str | os.PathLike,
    truth: GroundTruth,
    *,
    strict: bool = False,
    limits: Limits = Limits(),
    now: datetime | None = None,
) -> list[Verification]:
    """Verify every submission folder, write OUT/leaderboard.md and OUT/index.html and update the ledger
    OUT/accepted.json; return the verifications.

    Submissions that fail verification, and copies of earlier ones (comparisons.reject_copies, with
    "earlier" from OUT's ledger first), are left out and listed under "Not shown"; the accepted ones are
    added to the ledger. With `strict`, any such submission stops the render before anything is written.
    Files in OUT that render did not write are never replaced.
    """
    out = Path(out)
    folders = submission_folders(submissions_dir, exclude=out)  # OUT may sit among the submissions
    _check_out(out, folders)
    with writing.locked(out):
        ledger = read_ledger(out)
        logger.info("verifying %d submission folder(s) in %s", len(folders), submissions_dir)
        verifications = [verify(folder, truth, limits=limits, now=now) for folder in folders]
        accepted_before = _accepted_before(ledger, verifications)
        reject_copies(verifications, accepted_before=accepted_before)
        flag_near_copies(verifications)
        skipped = [v for v in verifications if not v.accepted]
        if strict and skipped:
            raise StrictRenderError(skipped)
        tables = leaderboard_tables([v for v in verifications if v.accepted], truth)
        markdown = render_markdown(tables, skipped, truth)
        generation = writing.generation(markdown)
        writing.commit(out, {MARKDOWN_FILE: f"{markdown}\n<!-- {writing.generation_mark(generation)} -->\n",
                             HTML_FILE: render_html(tables, skipped, truth, writing.generation_mark(generation)),
                             LEDGER_FILE: _ledger_text(ledger, accepted_before, verifications,
                                                       _aware(now or datetime.now(timezone.utc)))})
    return verifications
